package player

// This file is the installer's test tone: a sine at a stated level that
// replaces the music on every output for a while. The direct backend's
// loop writes it instead of decoding, so the track waits where it was and
// resumes on the next sample when the tone ends; the telephone signal
// makes its own copy at the same level in dBm0 (OnTone), past the level
// stage that would otherwise re-level it.

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Test tone bounds: the telephone band, levels a meter reads, ten
// minutes at most so a forgotten tone ends on its own.
const (
	ToneMinHz      = 50
	ToneMaxHz      = 3400
	ToneMinDBFS    = -60
	ToneMaxDBFS    = 0
	ToneMaxSeconds = 600
	// ToneDBm0Offset converts: dBm0 = dBFS + 3.17 (ITU-T G.711: a
	// full-scale sine is +3.17 dBm0).
	ToneDBm0Offset = 3.17
)

// ErrToneUnsupported is returned by a backend that cannot play a test
// tone (MPD plays its own queue).
var ErrToneUnsupported = errors.New("the test tone needs the direct backend (--backend direct); the MPD backend plays only its queue")

// ToneRequest is a test tone: Hz at DBFS for Duration; a Duration of 0
// ends a tone early.
type ToneRequest struct {
	Hz       float64
	DBFS     float64
	Duration time.Duration
}

// DBm0 is the tone's level on the phone line.
func (t ToneRequest) DBm0() float64 { return t.DBFS + ToneDBm0Offset }

// Check refuses a tone outside the bounds.
func (t ToneRequest) Check() error {
	switch {
	case math.IsNaN(t.Hz) || t.Hz < ToneMinHz || t.Hz > ToneMaxHz:
		return fmt.Errorf("hz %v: want %d..%d", t.Hz, ToneMinHz, ToneMaxHz)
	case math.IsNaN(t.DBFS) || t.DBFS < ToneMinDBFS || t.DBFS > ToneMaxDBFS:
		return fmt.Errorf("level %v dBFS (%.2f dBm0): want %d..%d dBFS (%.2f..%.2f dBm0)", t.DBFS, t.DBm0(),
			ToneMinDBFS, ToneMaxDBFS, ToneMinDBFS+ToneDBm0Offset, ToneMaxDBFS+ToneDBm0Offset)
	case t.Duration < 0 || t.Duration > ToneMaxSeconds*time.Second:
		return fmt.Errorf("seconds %v: want 0..%d (0 ends a tone)", t.Duration.Seconds(), ToneMaxSeconds)
	}
	return nil
}

// Toner is a backend that plays test tones.
type Toner interface {
	Tone(t ToneRequest) error
}

// Tone plays a test tone on every output (see Toner); ErrToneUnsupported
// if the backend cannot.
func (p *Player) Tone(t ToneRequest) error {
	if err := t.Check(); err != nil {
		return err
	}
	tb, ok := p.backend.(Toner)
	if !ok {
		return ErrToneUnsupported
	}
	if err := tb.Tone(t); err != nil {
		return err
	}
	msg := "test tone ended"
	if t.Duration > 0 {
		msg = fmt.Sprintf("test tone: %g Hz at %.1f dBFS (%.2f dBm0) for %s", t.Hz, t.DBFS, t.DBm0(), t.Duration)
	}
	p.events.Add(Event{Kind: "admin", Message: msg})
	return nil
}

// toneState is the tone in progress, under Direct.mu.
type toneState struct {
	until time.Time
	amp   float64 // peak sample value
	step  float64 // radians per sample
	phase float64
}

// Tone replaces the music on every output with t from now on.
func (d *Direct) Tone(t ToneRequest) error {
	if err := t.Check(); err != nil {
		return err
	}
	d.mu.Lock()
	if t.Duration == 0 {
		d.tone = toneState{}
	} else {
		d.tone = toneState{
			until: time.Now().Add(t.Duration),
			amp:   32767 * math.Pow(10, t.DBFS/20),
			step:  2 * math.Pi * t.Hz / SampleRate,
		}
	}
	d.mu.Unlock()
	if d.opt.OnTone != nil {
		d.opt.OnTone(t)
	}
	d.wake() // a stopped loop plays the tone too
	return nil
}

// toneOn reports whether a tone is playing now.
func (d *Direct) toneOn() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.tone.until.IsZero() && time.Now().Before(d.tone.until)
}

// fillTone fills the whole block with the tone if one is playing; the
// volume does not apply (the level is the one asked for). It returns
// false, touching nothing, when no tone plays.
func (l *audioLoop) fillTone() bool {
	d := l.d
	d.mu.Lock()
	t := &d.tone
	if t.until.IsZero() || !time.Now().Before(t.until) {
		if !t.until.IsZero() {
			d.tone = toneState{}
			d.log.Info("test tone ended; the music resumes")
		}
		d.mu.Unlock()
		return false
	}
	for i := 0; i+BytesPerFrame <= len(l.block); i += BytesPerFrame {
		v := int16(math.Round(t.amp * math.Sin(t.phase)))
		t.phase += t.step
		u := uint16(v)
		l.block[i], l.block[i+1], l.block[i+2], l.block[i+3] = byte(u), byte(u>>8), byte(u), byte(u>>8)
	}
	t.phase = math.Mod(t.phase, 2*math.Pi)
	d.mu.Unlock()
	l.src = LevelDBFS(l.block)
	l.fill = len(l.block)
	l.ready = true
	l.wpos = 0
	return true
}

// Outputs reports every output (DirectOptions.Outputs).
func (d *Direct) Outputs() []OutputStatus {
	if d.opt.Outputs == nil {
		return nil
	}
	return d.opt.Outputs()
}
