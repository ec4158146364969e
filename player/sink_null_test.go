package player

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNullSinkPacedByClock(t *testing.T) {
	clk := newPacerTestClock()
	start := clk.Now()
	s := NewNullSink(clk)
	defer s.Close()
	buf := make([]byte, bytesFor(time.Second)) // one big write is split into chunks
	for range 10 {
		n, err := s.Write(buf)
		if err != nil || n != len(buf) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got, want := clk.Now().Sub(start), 10*time.Second-DefaultPacerAhead; got != want {
		t.Fatalf("10 s of audio took %v on the sink's clock, want %v", got, want)
	}
}

func TestNullSinkRealTime(t *testing.T) {
	s, err := OpenSink(context.Background(), Output{Kind: OutputNull}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, 4096)
	start := time.Now()
	for written := 0; written < bytesFor(2*time.Second); written += len(buf) {
		if _, err := s.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 1900*time.Millisecond-DefaultPacerAhead || el > 3*time.Second {
		t.Fatalf("2 s of audio took %v, want %v–3 s (the pacer runs %v ahead)", el, 1900*time.Millisecond-DefaultPacerAhead, DefaultPacerAhead)
	}
}

func TestNullSinkCloseWakesWrite(t *testing.T) {
	s := NewNullSink(nil)
	// 10 s of audio: the pacer holds the Write far longer than the 50 ms
	// that let it reach the pacer.
	checkCloseWakesWrite(t, s, bytesFor(10*time.Second), 50*time.Millisecond, 2*time.Second, "of 10 s to the null sink")
	if _, err := s.Write([]byte{0, 0, 0, 0}); !errors.Is(err, ErrSinkClosed) {
		t.Fatalf("Write on a closed sink = %v, want ErrSinkClosed", err)
	}
}
