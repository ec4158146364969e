package player

// This file is the MPD backend's ownership of MPD's player state: assert
// puts back the options and outputs that make MPD loop the queue
// gaplessly into the line, and drift names what another client changed
// since, as a fault the watchdog's replay rung undoes.

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fhs/gompd/v2/mpd"
)

// assert makes MPD's options, outputs, queue, volume and play state
// match what mohd wants. full also forces play when wanted (the replay
// rung).
func (o *mpdOwner) assert(full bool) error {
	if err := o.assertOptions(); err != nil {
		return err
	}
	w := o.m.wantNow()
	o.applied.playlistGen = w.playlistGen - 1 // force a queue check
	o.applied.volumeGen = w.volumeGen - 1
	o.applied.playGen = w.playGen - 1
	return o.applyWith(true)
}

// assertOptions puts back the playback options and outputs that make
// MPD loop the queue gaplessly into the line: repeat on, single, random
// and consume off, the configured crossfade, and every output mohd
// needs enabled.
func (o *mpdOwner) assertOptions() error {
	err := o.conn.do("options", func(c *mpd.Client) error {
		cl := c.BeginCommandList()
		cl.Repeat(true)
		cl.Single(false)
		cl.Random(false)
		cl.Consume(false)
		return cl.End()
	})
	if err != nil {
		return err
	}
	// gompd's command list has no crossfade or enableoutput.
	xfade := o.m.o.Crossfade
	if err := o.conn.do("crossfade", func(c *mpd.Client) error { return c.Command("crossfade %d", xfade).OK() }); err != nil {
		return err
	}
	outs, err := o.listOutputs()
	if err != nil {
		return err
	}
	o.learnOutputs(outs)
	moved := false
	for _, out := range outs {
		if name := out["outputname"]; o.wantsOutput(name) && movedAway(out) {
			// moveoutput pulls it back into mohd's (the default)
			// partition, with whatever enabled state it had there.
			if err := o.conn.do("moveoutput", func(c *mpd.Client) error { return c.MoveOutput(name) }); err != nil {
				return err
			}
			o.log.Info("mpd output moved back", "output", name)
			moved = true
		}
	}
	if moved {
		if outs, err = o.listOutputs(); err != nil {
			return err
		}
	}
	for _, out := range outs {
		if !o.wantsOutput(out["outputname"]) || out["outputenabled"] == "1" && !movedAway(out) {
			continue
		}
		id, err := strconv.Atoi(out["outputid"])
		if err != nil {
			return fmt.Errorf("mpd output %q has id %q", out["outputname"], out["outputid"])
		}
		if err := o.conn.do("enableoutput", func(c *mpd.Client) error { return c.EnableOutput(id) }); err != nil {
			return err
		}
		o.log.Info("mpd output enabled", "output", out["outputname"])
	}
	return nil
}

// movedAway reports an output another client moved into a partition of
// its own: MPD 0.22+ leaves a "dummy" of it in the default partition,
// which plays nothing whether enabled or not (measured on 0.23).
func movedAway(out mpd.Attrs) bool { return out["plugin"] == "dummy" }

func (o *mpdOwner) listOutputs() ([]mpd.Attrs, error) {
	var outs []mpd.Attrs
	err := o.conn.do("outputs", func(c *mpd.Client) error {
		var err error
		outs, err = c.ListOutputs()
		return err
	})
	return outs, err
}

// learnOutputs fixes, once, which outputs must stay enabled. The MPD mohd
// owns has the two outputs mohd wrote into its config. An MPD mohd does
// not own may have outputs its admin keeps off on purpose, so the ones
// enabled when mohd first sees it are the configured ones (all of them if
// none is: an MPD with no output enabled plays to nobody).
func (o *mpdOwner) learnOutputs(outs []mpd.Attrs) {
	if o.outputs != nil {
		return
	}
	if o.m.owned {
		o.outputs = []string{mpdOutputName, mpdLevelOutputName}
		return
	}
	o.outputs = []string{}
	for _, out := range outs {
		if out["outputenabled"] == "1" {
			o.outputs = append(o.outputs, out["outputname"])
		}
	}
	if len(o.outputs) == 0 {
		for _, out := range outs {
			o.outputs = append(o.outputs, out["outputname"])
		}
	}
	o.log.Info("mpd outputs kept enabled", "outputs", o.outputs)
}

func (o *mpdOwner) wantsOutput(name string) bool {
	for _, n := range o.outputs {
		if n == name {
			return true
		}
	}
	return false
}

// drift compares MPD's status and outputs with what mohd set and returns
// a fault for the first difference (outputs, then options, then the
// queue), zero when there is none. Only another client changes these: mohd
// sets them all in assert and notes the queue version after its own
// changes.
func (o *mpdOwner) drift(st mpd.Attrs, outs []mpd.Attrs) Fault {
	var off []string
	lineOff := false // anything but mohd's own level output
	note := func(name, what string) {
		off = append(off, what)
		lineOff = lineOff || name != mpdLevelOutputName || !o.m.owned
	}
	for _, out := range outs {
		name := out["outputname"]
		switch {
		case !o.wantsOutput(name):
		case movedAway(out):
			note(name, fmt.Sprintf("moved output %q to another partition", name))
		case out["outputenabled"] != "1":
			note(name, fmt.Sprintf("disabled output %q", name))
		}
	}
	if len(off) > 0 {
		what := "mohd cannot hear what plays"
		if lineOff {
			what = "callers hear nothing"
		}
		return Fault{Class: FaultMPDOutput, Detail: fmt.Sprintf("another client %s: %s", strings.Join(off, ", "), what)}
	}
	var opts []string
	for _, want := range []struct{ key, val, text string }{
		{"repeat", "1", "repeat is off"},
		{"single", "0", "single is on"},
		{"random", "0", "random is on"},
		{"consume", "0", "consume is on"},
	} {
		if v, ok := st[want.key]; ok && v != want.val {
			opts = append(opts, want.text)
		}
	}
	// MPD leaves xfade out of its status while crossfade is 0.
	xfade := st["xfade"]
	if xfade == "" {
		xfade = "0"
	}
	if xfade != strconv.Itoa(o.m.o.Crossfade) {
		opts = append(opts, fmt.Sprintf("crossfade is %s s, want %d s", xfade, o.m.o.Crossfade))
	}
	if len(opts) > 0 {
		return Fault{Class: FaultMPDOptions, Detail: "changed by another client: " + strings.Join(opts, ", ")}
	}
	// Last: consume or random change the queue too, and the cause is
	// what the event should name.
	if v := st["playlist"]; o.queueVer != "" && v != o.queueVer {
		return Fault{Class: FaultMPDQueue, Detail: fmt.Sprintf("another client changed the queue (length %s, mohd queued %d)", st["playlistlength"], len(o.queue))}
	}
	return Fault{}
}

// noteDrift logs each change by another client once, and its end.
func (o *mpdOwner) noteDrift(drift Fault) {
	if drift == o.drifted {
		return
	}
	if !drift.IsZero() {
		o.log.Warn("mpd player state changed behind mohd's back", "fault", drift)
	} else {
		o.log.Info("mpd player state is mohd's again", "was", o.drifted)
	}
	o.drifted = drift
}
