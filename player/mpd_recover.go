package player

// This file is the MPD backend's recovery: starting the MPD mohd owns
// (mpd_proc.go is one run of the process), noticing it die, connecting,
// and the rungs of the watchdog's ladder — replay, clear the error,
// reconnect, restart MPD.

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/fhs/gompd/v2/mpd"
)

// abort resolves a stuck call: killing the MPD mohd owns drops the
// connection, so the blocked read returns. For an MPD mohd does not own
// the call is abandoned (see mpdConn).
func (o *mpdOwner) abort(reason string) {
	o.callFault = Fault{Class: FaultMPDTimeout, Detail: reason}
	if o.proc != nil {
		o.log.Warn("mpd stuck; killing it", "reason", reason, "pid", o.proc.PID())
		o.proc.kill()
	}
}

// start brings MPD up at Run's start.
func (o *mpdOwner) start(ctx context.Context) error {
	if o.m.owned {
		if err := o.startProc(ctx); err != nil {
			return err
		}
	}
	return o.connectAndAssert()
}

// startProc writes the config and starts an owned MPD, waiting until it
// greets on its socket.
func (o *mpdOwner) startProc(ctx context.Context) error {
	m := o.m
	conf, err := mpdConfig{RunDir: m.o.RunDir, Output: m.o.Output}.write()
	if err == nil {
		// A stale socket from a killed MPD would make it refuse to bind.
		_ = os.Remove(m.addr)
		o.proc, err = startMPDProc(m.o.Binary, conf, m.log, m.watchLog)
	}
	if err != nil {
		o.procFault = Fault{Class: FaultMPDExited, Detail: err.Error()}
		o.setFault(StateFailed)
		return err
	}
	m.pid.Store(int64(o.proc.PID()))
	m.mu.Lock()
	m.lineFailed = "" // a new MPD opens its outputs afresh
	m.mu.Unlock()
	o.log.Info("mpd started", "pid", o.proc.PID())
	sctx, cancel := context.WithTimeout(ctx, m.o.StartTimeout)
	defer cancel()
	if err := o.proc.waitReady(sctx, m.network, m.addr); err != nil {
		o.proc.kill()
		o.procExited()
		o.procFault = Fault{Class: FaultMPDExited, Detail: err.Error()}
		o.setFault(StateFailed)
		return err
	}
	o.procFault = Fault{}
	return nil
}

// procExited notes that the owned MPD is gone.
func (o *mpdOwner) procExited() {
	if o.proc == nil {
		return
	}
	text := o.proc.exitText()
	o.proc = nil
	o.conn.close()
	if o.callFault.Class == FaultMPDDisconnected {
		o.callFault = Fault{}
	}
	o.procFault = Fault{Class: FaultMPDExited, Detail: text}
	o.m.pid.Store(0)
	o.log.Warn("mpd exited", "status", text)
	o.setFault(StateFailed)
}

// connectAndAssert connects and makes MPD match what mohd wants.
func (o *mpdOwner) connectAndAssert() error {
	if err := o.conn.connect(); err != nil {
		o.callFault = Fault{Class: FaultMPDDisconnected, Detail: err.Error()}
		o.setFault(StateFailed)
		return err
	}
	o.callFault = Fault{}
	o.queueVer = ""
	return o.assert(true)
}

// reapIfDead notices an owned MPD that just died: its socket closes a
// moment before the process is reaped, and the fault must name the cause
// (exited), not the symptom (disconnected).
func (o *mpdOwner) reapIfDead() {
	if o.proc == nil {
		return
	}
	select {
	case <-o.proc.done:
		o.procExited()
	case <-time.After(200 * time.Millisecond):
	}
}

// rewatch rebuilds a failed idle watcher (its error usually means MPD is
// gone; then the command connection fails too and refresh says so).
func (o *mpdOwner) rewatch() {
	if !o.conn.connected() {
		return // a stale signal from a connection already dropped
	}
	o.conn.closeWatcher()
	if err := o.conn.startWatcher(); err != nil {
		o.reapIfDead()
		o.log.Warn("mpd idle watcher", "err", err)
		o.conn.close()
		o.callFault = Fault{Class: FaultMPDDisconnected, Detail: err.Error()}
		o.setFault(StateFailed)
	}
}

// recover performs one rung of the ladder.
func (o *mpdOwner) recover(ctx context.Context, rung Rung) error {
	o.recovering = true
	defer func() { o.recovering = false }()
	o.log.Info("mpd recovery", "rung", rung.String())
	switch rung {
	case RungReplay:
		if !o.conn.connected() {
			return fmt.Errorf("mpd replay: %w", errMPDNotConnected)
		}
		return o.replay()
	case RungClearError:
		if !o.conn.connected() {
			return fmt.Errorf("mpd clear error: %w", errMPDNotConnected)
		}
		if err := o.conn.do("clearerror", func(c *mpd.Client) error { return c.Command("clearerror").OK() }); err != nil {
			return err
		}
		return o.replay()
	case RungReconnect:
		if o.m.owned && o.proc == nil {
			return fmt.Errorf("mpd reconnect: %s", o.procFault)
		}
		o.conn.close()
		if err := o.connectAndAssert(); err != nil {
			return err
		}
		return o.replay()
	case RungRestartBackend:
		if o.m.owned {
			if o.proc != nil {
				o.proc.kill()
				o.procExited()
			}
			o.conn.close()
			if err := o.startProc(ctx); err != nil {
				return err
			}
		} else {
			if len(o.m.o.RestartCommand) == 0 {
				return fmt.Errorf("mpd restart: no restart command for an MPD mohd does not own: %w", ErrRungUnsupported)
			}
			if err := o.runRestartCommand(ctx); err != nil {
				return err
			}
		}
		if err := o.connectAndAssert(); err != nil {
			return err
		}
		return o.replay()
	}
	return fmt.Errorf("mpd %s: %w", rung, ErrRungUnsupported)
}

// replay reasserts everything and starts playback if wanted.
func (o *mpdOwner) replay() error {
	if err := o.assert(true); err != nil {
		return err
	}
	return o.setPlay(o.m.wantNow().playing)
}
