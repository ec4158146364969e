package player

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ALSA sink defaults.
const (
	// DefaultALSABufferTime is aplay's hardware buffer: long enough to ride
	// out a busy moment on a small box, short enough that a volume change
	// is heard at once.
	DefaultALSABufferTime = 200 * time.Millisecond
	// DefaultALSAStartupWait is how long OpenALSASink watches aplay for an
	// early exit, which is how a missing or busy device shows.
	DefaultALSAStartupWait = 300 * time.Millisecond
	// DefaultALSAWriteTimeout is how long a Write may block before aplay
	// is deemed stuck (a sound card consumes a chunk in milliseconds).
	DefaultALSAWriteTimeout = 5 * time.Second
)

// alsaPipeSize shrinks the pipe to aplay (default 64 KiB, 370 ms) so that
// little audio sits between the volume control and the speaker.
const alsaPipeSize = 16 << 10

// ALSASinkOptions tune OpenALSASink; the zero value is fine.
type ALSASinkOptions struct {
	Logger       *slog.Logger
	Aplay        string        // the aplay binary; "" is "aplay" from PATH
	BufferTime   time.Duration // 0: DefaultALSABufferTime
	StartupWait  time.Duration // 0: DefaultALSAStartupWait
	WriteTimeout time.Duration // 0: DefaultALSAWriteTimeout
}

// ALSASink plays PCM on an ALSA device through an aplay child process.
// aplay blocks when the card's buffer is full, which paces the writer.
// Going through a process keeps mohd free of cgo, lets it choose the device,
// and turns a dead or missing card into an error it can retry.
type ALSASink struct {
	device       string
	cmd          *exec.Cmd
	stdin        *os.File
	stderr       *tailBuffer
	done         chan struct{} // closed once aplay was reaped
	waitErr      error         // aplay's exit, valid after done
	writeTimeout time.Duration
	log          *slog.Logger

	closeOnce sync.Once
	mu        sync.Mutex
	closed    bool
}

// aplayArgs is aplay's command line for the sink's PCM format.
func aplayArgs(device string, buffer time.Duration) []string {
	args := []string{"-q", "-t", "raw", "-f", "S16_LE", "-r", strconv.Itoa(SampleRate), "-c", strconv.Itoa(Channels)}
	if device != "" {
		args = append(args, "-D", device)
	}
	if buffer > 0 {
		args = append(args, "--buffer-time="+strconv.FormatInt(buffer.Microseconds(), 10))
	}
	return args
}

// OpenALSASink starts aplay on device ("" = ALSA's default) and watches it
// for StartupWait so that a device that cannot be opened is reported here,
// with aplay's own words, rather than on the first Write.
func OpenALSASink(ctx context.Context, device string, o ALSASinkOptions) (*ALSASink, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Aplay == "" {
		o.Aplay = "aplay"
	}
	if o.BufferTime <= 0 {
		o.BufferTime = DefaultALSABufferTime
	}
	if o.StartupWait <= 0 {
		o.StartupWait = DefaultALSAStartupWait
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultALSAWriteTimeout
	}
	if err := checkALSADevice(device); err != nil {
		return nil, fmt.Errorf("alsa sink: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("alsa sink: pipe: %w", err)
	}
	setPipeSize(w, alsaPipeSize)

	s := &ALSASink{
		device:       device,
		stdin:        w,
		stderr:       &tailBuffer{max: 4096},
		done:         make(chan struct{}),
		writeTimeout: o.WriteTimeout,
		log:          o.Logger.With("component", "sink", "output", Output{Kind: OutputALSA, Device: device}.String()),
	}
	cmd := exec.Command(o.Aplay, aplayArgs(device, o.BufferTime)...)
	cmd.Stdin = r
	cmd.Stderr = io.MultiWriter(s.stderr, &underrunCounter{}) // alsa_underruns.go
	// Own process group so Close can kill aplay and anything it spawned;
	// Pdeathsig so aplay does not outlive a mohd that was SIGKILLed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("alsa sink: %w (install alsa-utils)", err)
		}
		return nil, fmt.Errorf("alsa sink: start aplay: %w", err)
	}
	r.Close() // aplay holds the read end now; its exit must make writes fail
	s.cmd = cmd
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()

	t := time.NewTimer(o.StartupWait)
	defer t.Stop()
	select {
	case <-s.done:
		w.Close()
		return nil, s.exitError()
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("alsa sink: start aplay: %w", ctx.Err())
	case <-t.C:
	}
	s.log.Debug("aplay started", "pid", cmd.Process.Pid, "buffer", o.BufferTime)
	return s, nil
}

// setPipeSize is best effort: a kernel that refuses only costs latency.
func setPipeSize(f *os.File, size int) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETPIPE_SZ, uintptr(size))
	})
}

// PID is aplay's process id; the watchdog's tests kill it to fake a
// device failure.
func (s *ALSASink) PID() int { return s.cmd.Process.Pid }

// Exited is closed when aplay has exited, so a backend can notice a dead
// output while it is not writing.
func (s *ALSASink) Exited() <-chan struct{} { return s.done }

// aplayPrefix is the "aplay: main:831: " aplay puts before its messages.
var aplayPrefix = regexp.MustCompile(`^aplay: [A-Za-z_]+:[0-9]+: `)

// exitError describes how aplay ended, with the last line it printed,
// e.g. "alsa sink: aplay exited: audio open error: No such file or
// directory (exit status 1)". Call only after done is closed.
func (s *ALSASink) exitError() error {
	msg := aplayPrefix.ReplaceAllString(s.stderr.lastLine(), "")
	status := "exit status 0"
	if s.waitErr != nil {
		status = s.waitErr.Error()
	}
	if msg == "" {
		return fmt.Errorf("alsa sink: aplay exited (%s)", status)
	}
	return fmt.Errorf("alsa sink: aplay exited: %s (%s)", msg, status)
}

// Write hands p to aplay, blocking while the card's buffer is full. If
// aplay died it returns an error with aplay's last words; if aplay takes
// nothing for WriteTimeout it returns a stall error. Either way the sink
// is done and must be closed and reopened.
func (s *ALSASink) Write(p []byte) (int, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return 0, ErrSinkClosed
	}
	// The deadline is per pipe-full, so it measures aplay taking nothing,
	// not how long a large p takes to play.
	var n int
	var err error
	for n < len(p) && err == nil {
		_ = s.stdin.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		var m int
		m, err = s.stdin.Write(p[n:min(len(p), n+alsaPipeSize)])
		n += m
	}
	if err == nil {
		return n, nil
	}
	s.mu.Lock()
	closed = s.closed
	s.mu.Unlock()
	switch {
	case closed || errors.Is(err, os.ErrClosed):
		return n, ErrSinkClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		select {
		case <-s.done:
			return n, s.exitError()
		default:
		}
		return n, fmt.Errorf("alsa sink: aplay took no audio for %s (pid %d stalled)", s.writeTimeout, s.PID())
	}
	// The pipe broke: aplay is gone or going; give it a moment to be
	// reaped so the error can say why.
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-s.done:
		return n, s.exitError()
	case <-t.C:
		return n, fmt.Errorf("alsa sink: write to aplay: %w", err)
	}
}

// Close stops aplay at once (the audio still buffered is dropped), reaps
// it and releases the pipe. A Write in progress returns ErrSinkClosed.
func (s *ALSASink) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.stdin.Close()
		s.stop()
	})
	return nil
}

// stop ends aplay's process group: SIGTERM lets aplay close the device
// cleanly, SIGKILL follows if it does not go.
func (s *ALSASink) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(500 * time.Millisecond)
	defer t.Stop()
	select {
	case <-s.done:
		return
	case <-t.C:
	}
	s.log.Warn("aplay ignored SIGTERM; killing it", "pid", pgid)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-s.done
}

// ALSAAvailable reports whether device ("" = default) can be opened now,
// by letting aplay open it and play nothing. The error carries aplay's
// reason, e.g. `alsa device "hw:9,0": audio open error: No such file or
// directory`, so mohd can say why it falls back to the null output.
func ALSAAvailable(device string) error {
	if device != "" {
		if err := checkALSADevice(device); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var stderr tailBuffer
	stderr.max = 4096
	cmd := exec.CommandContext(ctx, "aplay", aplayArgs(device, 0)...)
	cmd.Stderr = &stderr // stdin is /dev/null: open the device, play nothing
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	name := device
	if name == "" {
		name = "default"
	}
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("alsa device %q: %w (install alsa-utils)", name, err)
	}
	if msg := aplayPrefix.ReplaceAllString(stderr.lastLine(), ""); msg != "" {
		return fmt.Errorf("alsa device %q: %s", name, msg)
	}
	return fmt.Errorf("alsa device %q: aplay: %w", name, err)
}

// tailBuffer keeps the last bytes a process wrote to stderr.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// lastLine is the last non-empty line written.
func (b *tailBuffer) lastLine() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := bytes.Split(bytes.TrimSpace(b.buf), []byte("\n"))
	return string(bytes.TrimSpace(lines[len(lines)-1]))
}
