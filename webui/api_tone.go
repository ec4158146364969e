package webui

import (
	"errors"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/mohproject/moh/player"
)

// toneDoc is POST /api/v1/player/tone's body: a level in dBFS or in dBm0
// (not both; neither means -19 dBm0, the telephone signal's target), a
// frequency (default 1000 Hz) and a duration, 0 ending a tone early.
type toneDoc struct {
	Hz      *float64 `json:"hz"`
	DBFS    *float64 `json:"dbfs"`
	DBm0    *float64 `json:"dbm0"`
	Seconds *float64 `json:"seconds"`
}

// toneAnswer says what plays and until when.
type toneAnswer struct {
	Hz      float64    `json:"hz"`
	DBFS    float64    `json:"dbfs"`
	DBm0    float64    `json:"dbm0"`
	Seconds float64    `json:"seconds"`
	Until   *time.Time `json:"until,omitempty"`
}

// toner is the part of the player that plays test tones; the Player
// interface does not carry it, so a Player without one answers 409.
type toner interface {
	Tone(player.ToneRequest) error
}

func (s *Server) tone(w http.ResponseWriter, r *http.Request) {
	var d toneDoc
	if err := decodeJSON(w, r, &d); err != nil {
		s.writeError(w, r, err)
		return
	}
	bad := func(msg string) { s.writeError(w, r, errorf(http.StatusBadRequest, "bad_tone", msg)) }
	if d.Seconds == nil {
		bad("seconds is required: how long the tone plays, 1 to 600 (0 ends a tone)")
		return
	}
	if d.DBFS != nil && d.DBm0 != nil {
		bad("give the level as dbfs or as dbm0, not both")
		return
	}
	t := player.ToneRequest{Hz: 1000, DBFS: -19 - player.ToneDBm0Offset}
	if d.Hz != nil {
		t.Hz = *d.Hz
	}
	switch {
	case d.DBFS != nil:
		t.DBFS = *d.DBFS
	case d.DBm0 != nil:
		t.DBFS = *d.DBm0 - player.ToneDBm0Offset
	}
	secs := *d.Seconds
	if math.IsNaN(secs) || secs < 0 || secs > player.ToneMaxSeconds {
		bad("seconds must be from 0 to 600 (0 ends a tone)")
		return
	}
	t.Duration = time.Duration(secs * float64(time.Second))
	if err := t.Check(); err != nil {
		bad("test tone: " + err.Error())
		return
	}
	tp, ok := s.opt.Player.(toner)
	if !ok {
		s.writeError(w, r, errorf(http.StatusConflict, "tone_unsupported", player.ErrToneUnsupported.Error()))
		return
	}
	if err := tp.Tone(t); err != nil {
		if errors.Is(err, player.ErrToneUnsupported) {
			s.writeError(w, r, errorf(http.StatusConflict, "tone_unsupported", err.Error()))
			return
		}
		bad("test tone: " + err.Error())
		return
	}
	s.audit(r, "test tone", "hz", t.Hz, "dbfs", t.DBFS, "seconds", secs)
	a := toneAnswer{Hz: t.Hz, DBFS: round2(t.DBFS), DBm0: round2(t.DBm0()), Seconds: secs}
	if t.Duration > 0 {
		until := time.Now().Add(t.Duration).UTC()
		a.Until = &until
	}
	s.toneLast.set(a)
	writeJSON(w, http.StatusOK, a)
}

// toneLog is the test tone started last, so every page (and a script)
// can show what plays: only this API starts tones.
type toneLog struct {
	mu   sync.Mutex
	last toneAnswer
}

func (l *toneLog) set(a toneAnswer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = a
}

// toneNowDoc is GET /api/v1/player/tone: whether a tone plays now and,
// if so, which and for how long yet. seconds_left spares a page the
// difference between its clock and the box's.
type toneNowDoc struct {
	Playing     bool       `json:"playing"`
	Hz          float64    `json:"hz,omitempty"`
	DBFS        float64    `json:"dbfs,omitempty"`
	DBm0        float64    `json:"dbm0,omitempty"`
	Until       *time.Time `json:"until,omitempty"`
	SecondsLeft float64    `json:"seconds_left,omitempty"`
}

func (s *Server) toneNow(w http.ResponseWriter, r *http.Request) {
	s.toneLast.mu.Lock()
	a := s.toneLast.last
	s.toneLast.mu.Unlock()
	var d toneNowDoc
	if a.Until != nil {
		if left := time.Until(*a.Until); left > 0 {
			d = toneNowDoc{Playing: true, Hz: a.Hz, DBFS: a.DBFS, DBm0: a.DBm0, Until: a.Until, SecondsLeft: math.Round(left.Seconds()*10) / 10}
		}
	}
	writeJSON(w, http.StatusOK, d)
}

// round2 rounds to 0.01 dB, so -19 dBm0 reads back as -19, not as
// -19.000000000000004.
func round2(x float64) float64 { return math.Round(x*100) / 100 }
