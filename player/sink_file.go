package player

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"
)

// ErrNoFIFOReader means the file output is a FIFO and no process has it
// open for reading, so there is nobody to play to yet.
var ErrNoFIFOReader = errors.New("no reader on fifo")

// DefaultFIFOWait is how long OpenFileSink waits for a FIFO reader.
const DefaultFIFOWait = 2 * time.Second

// FileSinkOptions tune OpenFileSink; the zero value is fine.
type FileSinkOptions struct {
	Logger *slog.Logger
	Clock  Clock // nil: RealClock
	// FIFOWait bounds the wait for a reader when the path is a FIFO
	// (0: DefaultFIFOWait). ctx may end it sooner.
	FIFOWait time.Duration
}

// FileSink writes raw s16le 44.1 kHz stereo to a FIFO read live by
// another process such as a PBX, or appends it to a regular file (for
// tests), paced in real time.
type FileSink struct {
	path string
	fifo bool
	f    *os.File
	w    *pacedWriter
	log  *slog.Logger
}

// OpenFileSink opens path for writing. A missing path is created as a
// regular file. On a FIFO it waits up to FIFOWait for a reader and fails
// with ErrNoFIFOReader rather than hanging.
func OpenFileSink(ctx context.Context, path string, o FileSinkOptions) (*FileSink, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FIFOWait <= 0 {
		o.FIFOWait = DefaultFIFOWait
	}
	log := o.Logger.With("component", "sink", "output", "file:"+path)
	f, fifo, err := openNonBlocking(ctx, path, o.FIFOWait, log)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	if fifo {
		log.Debug("file sink open on a fifo")
	} else {
		// Fine for tests and a quick listen; on an appliance it wears
		// the flash, which is what a FIFO to the PBX avoids.
		log.Warn("file output is a regular file: it grows by about 635 MB an hour")
	}
	return &FileSink{path: path, fifo: fifo, f: f, w: newPacedWriter(o.Clock), log: log}, nil
}

// openNonBlocking opens path write-only. O_NONBLOCK keeps open(2) on a
// FIFO from blocking until a reader comes (it fails with ENXIO instead),
// which also covers a FIFO created between a stat and the open.
func openNonBlocking(ctx context.Context, path string, wait time.Duration, log *slog.Logger) (*os.File, bool, error) {
	const flags = syscall.O_WRONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC | syscall.O_APPEND | syscall.O_CREAT
	giveUp := time.NewTimer(wait)
	defer giveUp.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	logged := false
	for {
		fd, err := syscall.Open(path, flags, 0o644)
		if err == nil {
			return fileFromFD(fd, path)
		}
		if !errors.Is(err, syscall.ENXIO) {
			return nil, false, fmt.Errorf("open %s: %w", path, err)
		}
		if !logged {
			// Debug: the caller retries with backoff and logs the error.
			log.Debug("waiting for a reader on fifo", "max_wait", wait)
			logged = true
		}
		select {
		case <-tick.C:
		case <-giveUp.C:
			return nil, false, fmt.Errorf("open %s: %w (waited %s)", path, ErrNoFIFOReader, wait)
		case <-ctx.Done():
			return nil, false, fmt.Errorf("open %s: %w: %w", path, ErrNoFIFOReader, ctx.Err())
		}
	}
}

// fileFromFD wraps fd. A FIFO stays non-blocking so the runtime poller
// parks a Write on a full pipe and Close can interrupt it; anything else
// goes back to blocking mode, which is what regular files want.
func fileFromFD(fd int, path string) (*os.File, bool, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, false, fmt.Errorf("stat %s: %w", path, err)
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFIFO:
		return os.NewFile(uintptr(fd), path), true, nil
	case syscall.S_IFDIR:
		syscall.Close(fd)
		return nil, false, fmt.Errorf("open %s: is a directory", path)
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, false, fmt.Errorf("open %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), false, nil
}

// FIFO reports whether the sink writes to a FIFO.
func (s *FileSink) FIFO() bool { return s.fifo }

// Write writes p at real-time speed. When the FIFO's reader went away it
// returns an error wrapping syscall.EPIPE; the sink is then done and must
// be closed and reopened.
func (s *FileSink) Write(p []byte) (int, error) {
	n, err := s.w.write(p, s.f.Write)
	if err == nil || errors.Is(err, ErrSinkClosed) {
		return n, err
	}
	if errors.Is(err, os.ErrClosed) {
		return n, ErrSinkClosed
	}
	if errors.Is(err, syscall.EPIPE) {
		return n, fmt.Errorf("file sink: write %s: reader went away: %w", s.path, err)
	}
	return n, fmt.Errorf("file sink: write %s: %w", s.path, err)
}

// Close closes the file; a Write in progress returns ErrSinkClosed.
func (s *FileSink) Close() error {
	s.w.cancel()
	if err := s.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("file sink: close %s: %w", s.path, err)
	}
	return nil
}
