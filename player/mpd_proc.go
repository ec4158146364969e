package player

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// mpdProc is one run of the mpd child process mohd owns. It lives in its
// own process group so a kill reaches anything it spawned (the pipe
// output's shell), and is reaped by a goroutine so it never lingers as a
// zombie.
type mpdProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
	log  *slog.Logger
	// onLine sees each stderr line (the backend watches for tracks MPD
	// could not open).
	onLine func(string)

	mu      sync.Mutex
	err     error    // exit status, valid once done is closed
	lastLog []string // the last lines MPD wrote to stderr, for the fault text
}

// startMPDProc starts `mpd --no-daemon --stderr CONF`.
// onLine, if set, sees every line MPD logs.
func startMPDProc(binary, conf string, log *slog.Logger, onLine func(string)) (*mpdProc, error) {
	cmd := exec.Command(binary, "--no-daemon", "--stderr", conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If mohd dies hard, its MPD must not keep a stale socket and
		// sound card busy.
		Pdeathsig: syscall.SIGKILL,
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("mpd stderr pipe: %w", err)
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mpd: %w", err)
	}
	p := &mpdProc{cmd: cmd, done: make(chan struct{}), log: log, onLine: onLine}
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		p.copyLog(stderr)
	}()
	go func() {
		<-logged // Wait must not run before the pipe is drained
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// copyLog forwards MPD's stderr to the logger and keeps the last lines.
func (p *mpdProc) copyLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		p.log.Debug("mpd", "line", line)
		if p.onLine != nil {
			p.onLine(line)
		}
		p.mu.Lock()
		p.lastLog = append(p.lastLog, line)
		if len(p.lastLog) > 5 {
			p.lastLog = p.lastLog[1:]
		}
		p.mu.Unlock()
	}
}

// PID is the process id of mpd.
func (p *mpdProc) PID() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *mpdProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitText describes how the process ended, with its last log line.
func (p *mpdProc) exitText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited() {
		return "running"
	}
	if p.err == nil {
		return "exited with status 0"
	}
	s := p.err.Error()
	// MPD's last words explain an exit of its own (a config or device
	// error); after a signal they are unrelated start-up chatter.
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && ee.Exited() {
		if n := len(p.lastLog); n > 0 {
			s += ": " + p.lastLog[n-1]
		}
	}
	return s
}

// kill SIGKILLs the whole process group and waits until it is reaped (a
// SIGSTOPped MPD dies from SIGKILL too).
func (p *mpdProc) kill() {
	if !p.exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.log.Error("mpd did not exit after SIGKILL", "pid", p.cmd.Process.Pid)
	}
}

// waitReady waits until MPD greets on its socket, it exits, or ctx ends.
func (p *mpdProc) waitReady(ctx context.Context, network, addr string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := probeMPD(ctx, network, addr, 500*time.Millisecond); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mpd not ready: %w", ctx.Err())
		case <-p.done:
			return fmt.Errorf("mpd exited at start: %s", p.exitText())
		case <-tick.C:
		}
	}
}

// errNotMPD is returned when something other than MPD answers.
var errNotMPD = errors.New("not an MPD greeting")

// probeMPD connects with a deadline and checks the greeting. gompd's Dial
// has no deadline (it hangs on a frozen MPD) and panics on a greeting
// shorter than six bytes, so mohd looks first.
func probeMPD(ctx context.Context, network, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("dial mpd: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read mpd greeting: %w", err)
	}
	if !strings.HasPrefix(line, "OK MPD ") {
		return fmt.Errorf("%w: %q", errNotMPD, strings.TrimSpace(line))
	}
	_, _ = io.WriteString(conn, "close\n")
	return nil
}

// mpdReopenHold is how long after MPD's last failure to open the line
// output it still counts as failed: MPD retries a failed output every
// 10 s while playing and logs each failure, but never a success.
const mpdReopenHold = 15 * time.Second

// watchLog notes MPD failing to open or decode a track: MPD then skips
// it silently, and mohd drops it from the queue at the next refresh. It
// also notes MPD failing to open the line output, which its status
// never shows.
func (m *MPD) watchLog(line string) {
	if _, detail, ok := strings.Cut(line, `Failed to open "`+mpdOutputName+`" `); ok {
		// `(alsa); Failed to open ALSA device "hw:9,0": No such file…`
		if _, why, ok := strings.Cut(detail, "; "); ok {
			detail = why
		}
		m.mu.Lock()
		m.lineFailed, m.lineFailedAt = strings.TrimSpace(detail), m.now()
		m.mu.Unlock()
		return
	}
	if strings.Contains(line, "Failed to open") || strings.Contains(line, "Failed to decode") {
		m.lostTrack.Store(true)
	}
}

// lineFault is the fault of a line output MPD could not open lately.
func (m *MPD) lineFault() Fault {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lineFailed == "" || m.now().Sub(m.lineFailedAt) > mpdReopenHold {
		return Fault{}
	}
	return Fault{Class: FaultSinkFailed, Detail: fmt.Sprintf("mpd cannot open output %q: %s (only mohd's level output hears the music)", mpdOutputName, m.lineFailed)}
}
