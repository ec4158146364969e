package testkit

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcKillReaps: a real child's output reaches Log, and Kill leaves
// no zombie behind (the test binary would collect them otherwise).
func TestProcKillReaps(t *testing.T) {
	p := Start(t, exec.Command("sh", "-c", "echo started; exec sleep 60"))
	WaitFor(t, 5*time.Second, 10*time.Millisecond, "the child's output", func() bool {
		return strings.Contains(p.Log.String(), "started")
	})
	pid := p.Cmd.Process.Pid
	p.Kill()
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Kill")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("process %d still exists after Kill", pid)
	}
	p.Kill() // a second Kill (the cleanup's) must not block
}

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := NewClock(t0)
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(t0.Add(90 * time.Second)) {
		t.Fatalf("Now after Advance = %v", got)
	}
}

func TestFreeAddrIsFree(t *testing.T) {
	p, err := FreePort()
	if err != nil || p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d, %v", p, err)
	}
	if a := FreeAddr(t); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Fatalf("FreeAddr = %q", a)
	}
}

func TestWaitForFailsWithWhat(t *testing.T) {
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		WaitFor(ft, 30*time.Millisecond, 5*time.Millisecond, "never", func() bool { return false })
	}()
	<-done
	if !strings.Contains(ft.msg, "waiting for never") {
		t.Fatalf("WaitFor's failure says %q", ft.msg)
	}
}

// fatalRecorder records Fatalf and ends its goroutine, as testing does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
