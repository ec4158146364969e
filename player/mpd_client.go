package player

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fhs/gompd/v2/mpd"
)

// Errors of the MPD connection.
var (
	errMPDTimeout      = errors.New("mpd did not answer in time")
	errMPDNotConnected = errors.New("not connected to mpd")
)

// mpdConn is mohd's connection to MPD: a gompd Client for commands and a
// gompd Watcher for idle events. gompd has no deadlines, never
// reconnects and panics in a few places, so every call here runs in a
// goroutine with a timeout and a recover, and on a timeout the stuck
// connection is abandoned after abort (which kills the MPD mohd owns, so
// the blocked read returns). Only the MPD backend's owner goroutine uses
// an mpdConn.
type mpdConn struct {
	network, addr string
	timeout       time.Duration
	abort         func(reason string) // resolves a stuck call; may be nil
	log           *slog.Logger

	client  *mpd.Client
	watcher *mpd.Watcher
	events  chan string   // idle subsystems that changed (coalesced)
	werr    chan struct{} // the watcher failed; close and rebuild it
	stuck   bool          // a call timed out: the client must not be reused
}

func newMPDConn(network, addr string, timeout time.Duration, abort func(string), log *slog.Logger) *mpdConn {
	return &mpdConn{
		network: network, addr: addr, timeout: timeout, abort: abort, log: log,
		events: make(chan string, 8),
		werr:   make(chan struct{}, 1),
	}
}

// runBounded runs f in a goroutine, turning a panic into an error and
// waiting at most m.timeout. On a timeout it calls abort and gives f a
// short grace to return (the aborted connection makes it fail fast);
// reports whether f finished.
func (m *mpdConn) runBounded(what string, f func() error) (finished bool, err error) {
	res := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				res <- fmt.Errorf("mpd %s: gompd panic: %v", what, r)
			}
		}()
		res <- f()
	}()
	t := time.NewTimer(m.timeout)
	defer t.Stop()
	select {
	case err := <-res:
		return true, err
	case <-t.C:
	}
	reason := fmt.Sprintf("%s did not answer within %v", what, m.timeout)
	if m.abort != nil {
		m.abort(reason)
	}
	select {
	case <-res:
		return true, fmt.Errorf("mpd %s: %w", what, errMPDTimeout)
	case <-time.After(time.Second):
		// Abandoned: the goroutine ends when the connection finally drops.
		return false, fmt.Errorf("mpd %s: %w", what, errMPDTimeout)
	}
}

// connect dials the command client and the idle watcher.
func (m *mpdConn) connect() error {
	m.close()
	if err := probeMPD(context.Background(), m.network, m.addr, m.timeout); err != nil {
		return err
	}
	var c *mpd.Client
	finished, err := m.runBounded("dial", func() error {
		var err error
		c, err = mpd.Dial(m.network, m.addr)
		return err
	})
	if err != nil {
		if finished && c != nil {
			_ = c.Close()
		}
		return fmt.Errorf("dial mpd: %w", err)
	}
	m.client = c
	m.stuck = false
	if err := m.startWatcher(); err != nil {
		m.close()
		return err
	}
	return nil
}

// startWatcher builds a new idle watcher and a goroutine that drains both
// of its channels until the watcher closes them.
func (m *mpdConn) startWatcher() error {
	var w *mpd.Watcher
	finished, err := m.runBounded("watch", func() error {
		var err error
		w, err = mpd.NewWatcher(m.network, m.addr, "", "player", "mixer", "options", "playlist", "output")
		return err
	})
	if err != nil {
		if finished && w != nil {
			go w.Close()
		}
		return fmt.Errorf("mpd idle watcher: %w", err)
	}
	m.watcher = w
	// Drain the old signal so a stale failure does not kill the new one.
	select {
	case <-m.werr:
	default:
	}
	go m.drainWatcher(w)
	return nil
}

// drainWatcher reads Event and Error until both close. The watcher
// spins on errors once MPD is gone, so only the first error is passed on;
// the owner then closes the watcher, which ends the loop.
func (m *mpdConn) drainWatcher(w *mpd.Watcher) {
	ev, er := w.Event, w.Error
	failed := false
	for ev != nil || er != nil {
		select {
		case name, ok := <-ev:
			if !ok {
				ev = nil
				continue
			}
			select {
			case m.events <- name:
			default: // the owner refreshes everything on any event anyway
			}
		case _, ok := <-er:
			if !ok {
				er = nil
				continue
			}
			if !failed {
				failed = true
				select {
				case m.werr <- struct{}{}:
				default:
				}
			}
		}
	}
}

// closeWatcher closes the watcher in the background: Close waits for
// the idle call to return, which on a frozen MPD happens only once the
// process is killed.
func (m *mpdConn) closeWatcher() {
	if m.watcher == nil {
		return
	}
	w := m.watcher
	m.watcher = nil
	go func() {
		defer func() { _ = recover() }()
		_ = w.Close()
	}()
}

// close drops both connections.
func (m *mpdConn) close() {
	m.closeWatcher()
	if m.client == nil {
		return
	}
	c := m.client
	m.client = nil
	if m.stuck {
		return // a call may still be running on it; Close would race
	}
	_, _ = m.runBounded("close", func() error { return c.Close() })
}

func (m *mpdConn) connected() bool { return m.client != nil }

// do runs one command with the deadline. A failure of the connection
// itself (as opposed to an MPD ACK) drops the connection.
func (m *mpdConn) do(what string, f func(c *mpd.Client) error) error {
	if m.client == nil {
		return fmt.Errorf("mpd %s: %w", what, errMPDNotConnected)
	}
	c := m.client
	finished, err := m.runBounded(what, func() error { return f(c) })
	if err == nil {
		return nil
	}
	var ack mpd.Error
	if errors.As(err, &ack) {
		return fmt.Errorf("mpd %s: %w", what, err)
	}
	if !finished || errors.Is(err, errMPDTimeout) {
		m.stuck = !finished
	}
	m.close()
	return fmt.Errorf("mpd %s: %w", what, err)
}
