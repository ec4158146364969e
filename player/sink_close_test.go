package player

import (
	"errors"
	"io"
	"testing"
	"time"
)

// checkCloseWakesWrite writes n bytes to s from a goroutine; the caller's
// set-up (a wedged aplay, a FIFO nobody reads, the pacer) must hold that
// Write for at least held. Then Close must wake it with ErrSinkClosed
// within wake: a sink whose Close waits on a blocked Write would hang the
// recovery ladder's restart rung.
func checkCloseWakesWrite(t *testing.T, s io.WriteCloser, n int, held, wake time.Duration, what string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := s.Write(make([]byte, n))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Write %s returned early: %v", what, err)
	case <-time.After(held):
	}
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrSinkClosed) {
			t.Fatalf("blocked Write %s after Close = %v, want ErrSinkClosed", what, err)
		}
	case <-time.After(wake):
		t.Fatalf("Close did not wake a Write %s", what)
	}
}
