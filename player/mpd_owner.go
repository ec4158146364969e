package player

// This file is the MPD backend's owner loop: the one goroutine that talks
// to MPD. It carries the admin's changes over, polls MPD's status (and
// wakes on its idle events) and publishes what it saw with the fault, if
// any, for Status and the watchdog.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/fhs/gompd/v2/mpd"
)

// mpdOwner is the state only Run's goroutine touches.
type mpdOwner struct {
	m    *MPD
	log  *slog.Logger
	conn *mpdConn
	proc *mpdProc

	applied   want // generations applied
	queue     []queued
	queueVer  string // MPD's playlist version after mohd's last change
	lastSong  int    // queue position last seen playing, restored after a restart
	procFault Fault  // why MPD is not running
	callFault Fault  // the last call that failed or timed out
	// refused holds tracks MPD would not queue, with their mtime then,
	// so they are not offered again (and the queue rebuilt) until changed.
	refused    map[string]time.Time
	recovering bool
	// outputs are the names of the MPD outputs that must stay enabled
	// (learned at the first connection; see learnOutputs).
	outputs []string
	// drifted is the drift last logged, so each change is logged once.
	drifted Fault
	ext     externalProgress
}

// Run implements Backend. Only this goroutine talks to MPD.
func (m *MPD) Run(ctx context.Context) error {
	o := &mpdOwner{m: m, log: m.log, lastSong: -1, ext: externalProgress{lastSong: -1}}
	if m.owned {
		if err := os.MkdirAll(m.o.RunDir, 0o755); err != nil {
			return fmt.Errorf("mpd run dir: %w", err)
		}
		fifo := filepath.Join(m.o.RunDir, mpdLevelFIFO)
		if err := ensureFIFO(fifo); err != nil {
			return err
		}
		lctx, lcancel := context.WithCancel(ctx)
		levelDone := make(chan struct{})
		go func() {
			defer close(levelDone)
			m.listen(lctx, fifo)
		}()
		defer func() { lcancel(); <-levelDone }()
	}
	o.conn = newMPDConn(m.network, m.addr, m.o.CallTimeout, o.abort, m.log)
	defer o.shutdown()

	if err := o.start(ctx); err != nil {
		m.log.Error("mpd start", "err", err)
	}
	tick := time.NewTicker(m.o.PollInterval)
	defer tick.Stop()
	for {
		var procDone <-chan struct{}
		if o.proc != nil {
			procDone = o.proc.done
		}
		var events <-chan string
		var werr <-chan struct{}
		if o.conn.connected() {
			events, werr = o.conn.events, o.conn.werr
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			o.refresh()
		case <-m.wakes:
			o.apply()
			o.refresh()
		case <-events:
			o.refresh()
		case <-werr:
			o.rewatch()
		case <-procDone:
			o.procExited()
		case r := <-m.reqs:
			r.reply <- o.recover(r.ctx, r.rung)
			o.refresh()
		}
	}
}

func (o *mpdOwner) shutdown() {
	o.conn.close()
	if o.proc != nil {
		o.proc.kill()
		o.proc = nil
	}
}

// setFault publishes the current fault with the given state.
func (o *mpdOwner) setFault(state State) {
	// A timeout is the most telling, then a dead process, then a lost
	// connection.
	fault := o.callFault
	if !o.procFault.IsZero() && fault.Class != FaultMPDTimeout {
		fault = o.procFault
	}
	if fault.IsZero() && !o.conn.connected() {
		fault = Fault{Class: FaultMPDDisconnected, Detail: "not connected"}
	}
	o.m.mu.Lock()
	o.m.seen.state = state
	o.m.seen.fault = fault
	o.m.mu.Unlock()
}

// failed records a failed call: an MPD ACK is only logged, anything
// else means the connection is gone.
func (o *mpdOwner) failed(err error) {
	var ack mpd.Error
	if errors.As(err, &ack) {
		o.log.Warn("mpd command", "err", err)
		return
	}
	if o.callFault.Class != FaultMPDTimeout {
		o.callFault = Fault{Class: FaultMPDDisconnected, Detail: err.Error()}
	}
	o.reapIfDead()
	o.setFault(StateFailed)
}

// apply carries admin changes over to MPD.
func (o *mpdOwner) apply() {
	if !o.conn.connected() {
		return
	}
	if err := o.applyWith(false); err != nil {
		o.failed(err)
	}
}

func (o *mpdOwner) applyWith(forceQueue bool) error {
	w := o.m.takeWant()
	if w.playlistGen != o.applied.playlistGen || forceQueue {
		if err := o.syncQueue(w.playlist); err != nil {
			return err
		}
		o.applied.playlistGen = w.playlistGen
	}
	if w.volume >= 0 && w.volumeGen != o.applied.volumeGen {
		if err := o.conn.do("setvol", func(c *mpd.Client) error { return c.SetVolume(w.volume) }); err != nil {
			return err
		}
		o.applied.volumeGen = w.volumeGen
	}
	if w.playGen != o.applied.playGen {
		if err := o.setPlay(w.playing); err != nil {
			return err
		}
		o.applied.playGen = w.playGen
	}
	for range w.next {
		if err := o.conn.do("next", func(c *mpd.Client) error { return c.Next() }); err != nil {
			return err
		}
	}
	return nil
}

// setPlay starts (resumes) or stops playback.
func (o *mpdOwner) setPlay(on bool) error {
	if !on {
		return o.conn.do("stop", func(c *mpd.Client) error { return c.Stop() })
	}
	st, err := o.status()
	if err != nil {
		return err
	}
	switch st["state"] {
	case "play":
		return nil
	case "pause":
		return o.conn.do("pause 0", func(c *mpd.Client) error { return c.Pause(false) })
	}
	if len(o.queue) == 0 {
		return nil // nothing to play; the Player hands us the fallback
	}
	pos := 0
	if p, err := strconv.Atoi(st["song"]); err == nil && p >= 0 && p < len(o.queue) {
		pos = p
	} else if o.lastSong >= 0 && o.lastSong < len(o.queue) {
		pos = o.lastSong
	}
	return o.conn.do("play", func(c *mpd.Client) error { return c.Play(pos) })
}

func (o *mpdOwner) status() (mpd.Attrs, error) {
	var st mpd.Attrs
	err := o.conn.do("status", func(c *mpd.Client) error {
		var err error
		st, err = c.Status()
		return err
	})
	return st, err
}

// refresh reads MPD's status and publishes it with the fault, if any.
func (o *mpdOwner) refresh() {
	if !o.conn.connected() {
		o.setFault(StateFailed)
		return
	}
	st, err := o.status()
	if err != nil {
		o.failed(err)
		return
	}
	outs, err := o.listOutputs()
	if err != nil {
		o.failed(err)
		return
	}
	m := o.m
	w := m.wantNow()
	drift := o.drift(st, outs)
	if !drift.IsZero() && !w.playing && !o.recovering {
		// The watchdog stands down while the admin has stopped playback,
		// so mohd puts its state back itself: Play must start from it.
		o.noteDrift(drift)
		if err := o.assert(false); err != nil {
			o.failed(err)
			if !o.conn.connected() {
				return
			}
			// MPD refused a command: the drift stays a fault (and is
			// retried at the next poll).
		} else if st, err = o.status(); err != nil {
			o.failed(err)
			return
		} else {
			drift = Fault{}
		}
	}
	o.noteDrift(drift)

	s := mpdSeen{index: -1}
	pos, perr := strconv.Atoi(st["song"])
	if perr == nil && pos >= 0 && pos < len(o.queue) {
		if (pos != o.lastSong || o.m.lostTrack.Swap(false)) && o.queueLost() {
			// MPD skips a file it cannot open (measured) without an
			// error in its status: mohd drops it and reports it.
			if err := o.syncQueue(o.m.wantNow().playlist); err != nil {
				o.failed(err)
				return
			}
			o.refresh()
			return
		}
		t := o.queue[pos].track
		s.track, s.index = &t, o.queue[pos].index
		o.lastSong = pos
	}
	s.elapsed = secs(st["elapsed"])
	s.duration = secs(st["duration"])
	s.state = StateStopped
	if st["state"] == "play" {
		s.state = StatePlaying
	}
	if o.recovering {
		s.state = StateRecovering
	}
	if !m.owned {
		o.ext.note(m, st["state"] == "play", pos, s.elapsed)
	}
	o.callFault = Fault{}
	s.fault = o.playFault(st, drift, w) // before m.mu: it reads the line fault under it
	m.mu.Lock()
	s.frames, s.lastAudio = m.seen.frames, m.seen.lastAudio
	m.seen = s
	m.mu.Unlock()
}

// playFault is the fault in what refresh saw of MPD, most telling first;
// zero when MPD plays as wanted.
func (o *mpdOwner) playFault(st mpd.Attrs, drift Fault, w want) Fault {
	state := st["state"]
	vol, verr := strconv.Atoi(st["volume"])
	var lineFault Fault
	if o.m.owned {
		lineFault = o.m.lineFault()
	}
	switch {
	case st["error"] != "":
		f := Fault{Class: FaultMPDError, Detail: st["error"]}
		if !drift.IsZero() {
			// The error is what the drift caused (no output left to
			// open): the class picks the clear-error rung, whose replay
			// also undoes the drift; the text names the cause.
			f.Detail += " (" + drift.String() + ")"
		}
		return f
	case !lineFault.IsZero():
		// The class picks the restart rung (a new MPD opens its outputs
		// at once) and then the ladder's backoff, as for the direct
		// backend's missing card.
		return lineFault
	case !drift.IsZero():
		// Another client changed what mohd owns; the watchdog's replay
		// rung puts it back, and until then nothing may call the line
		// healthy (a disabled line output still feeds the level output).
		return drift
	case w.playing && state == "stop":
		return Fault{Class: FaultMPDStopped, Detail: "mpd is stopped but playback is wanted"}
	case w.playing && state == "pause":
		return Fault{Class: FaultMPDPaused, Detail: "mpd is paused but playback is wanted"}
	case w.volume >= 0 && verr == nil && vol >= 0 && vol != w.volume:
		return Fault{Class: FaultMPDVolume, Detail: fmt.Sprintf("mpd volume is %d, mohd set %d", vol, w.volume)}
	}
	return Fault{}
}

func secs(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}
