package player

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// quietLog keeps the regular-file warning out of test and bench output.
var quietLog = slog.New(slog.DiscardHandler)

// fileTestPattern is n bytes that differ from one position to the next,
// so a lost, doubled or reordered chunk shows.
func fileTestPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestFileSinkRegularFileAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.raw")
	if err := os.WriteFile(path, []byte("head"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSink(context.Background(), Output{Kind: OutputFile, Path: path}, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	data := fileTestPattern(bytesFor(200 * time.Millisecond))
	if n, err := s.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if fs := s.(*FileSink); fs.FIFO() {
		t.Error("regular file reported as FIFO")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append([]byte("head"), data...)) {
		t.Fatalf("file holds %d bytes, want the old 4 plus %d written", len(got), len(data))
	}
}

func TestFileSinkCreatesMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.raw")
	s, err := OpenFileSink(context.Background(), path, FileSinkOptions{Logger: quietLog, Clock: newPacerTestClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write(make([]byte, 4000)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 4000 {
		t.Fatalf("stat = %v, %v; want a 4000-byte file", fi, err)
	}
}

func TestFileSinkOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, path, want string
	}{
		{"directory", dir, "is a directory"},
		{"missing parent", filepath.Join(dir, "nope", "out.raw"), "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenFileSink(context.Background(), tc.path, FileSinkOptions{Logger: quietLog})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "file sink: ") {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func makeFIFO(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "moh.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFileSinkFIFONoReader(t *testing.T) {
	path := makeFIFO(t)
	start := time.Now()
	_, err := OpenFileSink(context.Background(), path, FileSinkOptions{Logger: quietLog, FIFOWait: 200 * time.Millisecond})
	if !errors.Is(err, ErrNoFIFOReader) || !strings.Contains(err.Error(), "no reader on fifo") {
		t.Fatalf("err = %v, want ErrNoFIFOReader", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("open took %v with a 200 ms wait", el)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = OpenFileSink(ctx, path, FileSinkOptions{Logger: quietLog, FIFOWait: time.Hour})
	if !errors.Is(err, ErrNoFIFOReader) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrNoFIFOReader and the context's error", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("open ignored its context for %v", el)
	}
}

// TestFileSinkFIFOLiveReader plays to a process-like reader that comes up
// after the sink started waiting, checks it receives every byte in order
// at real-time speed, then makes the reader vanish: Write must fail with
// EPIPE, and the test binary (which does not ignore SIGPIPE) must live.
func TestFileSinkFIFOLiveReader(t *testing.T) {
	path := makeFIFO(t)
	data := fileTestPattern(bytesFor(time.Second))

	type result struct {
		got     []byte
		elapsed time.Duration
		err     error
	}
	readerGone := make(chan result, 1)
	go func() {
		time.Sleep(150 * time.Millisecond) // the reader starts late
		f, err := os.Open(path)
		if err != nil {
			readerGone <- result{err: err}
			return
		}
		start := time.Now()
		got := make([]byte, len(data))
		_, err = io.ReadFull(f, got)
		el := time.Since(start)
		f.Close() // the PBX hangs up
		readerGone <- result{got, el, err}
	}()

	s, err := OpenFileSink(context.Background(), path, FileSinkOptions{Logger: quietLog, FIFOWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.FIFO() {
		t.Error("FIFO not reported as FIFO")
	}
	start := time.Now()
	for off := 0; off < len(data); off += 4410 {
		if _, err := s.Write(data[off:min(off+4410, len(data))]); err != nil {
			t.Fatalf("Write at %d: %v", off, err)
		}
	}
	r := <-readerGone
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.Equal(r.got, data) {
		t.Fatal("reader got different bytes than were written")
	}
	if el := time.Since(start); el < 900*time.Millisecond-DefaultPacerAhead || el > 3*time.Second {
		t.Fatalf("1 s of audio reached the FIFO in %v, want real time", el)
	}

	deadline := time.Now().Add(3 * time.Second)
	for {
		_, err := s.Write(make([]byte, 4410))
		if err != nil {
			if !errors.Is(err, syscall.EPIPE) || !strings.Contains(err.Error(), "reader went away") {
				t.Fatalf("Write after the reader left = %v, want EPIPE", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Write kept succeeding after the reader left")
		}
	}
}

func TestFileSinkCloseWakesWriteOnFullFIFO(t *testing.T) {
	path := makeFIFO(t)
	// A reader that never reads: the pipe fills and Write blocks in the
	// kernel, not in the pacer.
	rfd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(rfd)
	s, err := OpenFileSink(context.Background(), path, FileSinkOptions{Logger: quietLog, Clock: newPacerTestClock()})
	if err != nil {
		t.Fatal(err)
	}
	checkCloseWakesWrite(t, s, 1<<20, 200*time.Millisecond, 2*time.Second, "of 1 MiB to an unread FIFO")
}

// BenchmarkFileSinkPacing writes 10 s of audio to the file sink in 4 KiB
// writes, after a warm-up that fills the pacer's lead, and reports how far
// the wall time strayed from 10 s (target: within ±2 %, i.e. ±200 ms).
func BenchmarkFileSinkPacing(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.raw")
	buf := make([]byte, 4096)
	for b.Loop() {
		os.Remove(path)
		s, err := OpenFileSink(context.Background(), path, FileSinkOptions{Logger: quietLog})
		if err != nil {
			b.Fatal(err)
		}
		write := func(d time.Duration) {
			total := bytesFor(d)
			for n := 0; n < total; n += len(buf) {
				if _, err := s.Write(buf[:min(len(buf), total-n)]); err != nil {
					b.Fatal(err)
				}
			}
		}
		write(time.Second)
		start := time.Now()
		write(10 * time.Second)
		el := time.Since(start)
		s.Close()
		b.ReportMetric(float64(el-10*time.Second)/float64(time.Millisecond), "ms_error_per_10s")
		b.ReportMetric(el.Seconds(), "s_for_10s")
	}
}
