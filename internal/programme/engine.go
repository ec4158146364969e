package programme

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mohproject/moh/player"
)

// EngineOptions connect the engine to the library and the player.
type EngineOptions struct {
	Store *Store
	// Tracks is the library with the files to play, by id.
	Tracks func() []player.Track
	// SetPlaylist hands the player the sequence to loop
	// (player.Player.SetPlaylist: the track on air plays on, gapless,
	// when it is still listed).
	SetPlaylist func([]player.Track)
	// SwitchNow hands the player a sequence that starts at once: the track
	// on air, if not in it, fades out (player.Player.SwitchNow). Nil:
	// SetPlaylist, which cuts without a fade.
	SwitchNow func([]player.Track)
	// OnAir is the id of the track on air, "" if none.
	OnAir  func() string
	Now    func() time.Time
	Logger *slog.Logger
	// MessageUnit is what every_minutes counts; zero is a minute. Tests
	// make it short so a message every "2 minutes" comes every 2 s.
	MessageUnit time.Duration
	// Poll is how often the track on air is looked at while the engine
	// waits for a track boundary (a switch or a message in progress);
	// zero is 50 ms. Nothing is polled in steady playback.
	Poll time.Duration
	// MaxWake bounds how long the engine sleeps before looking at the
	// wall clock again; zero is a minute (see Run).
	MaxWake time.Duration
	// OnChange, if set, is told every new programme (events, logs).
	OnChange func(old, new Programme)
}

// Engine applies the programme: it evaluates the schedule and the
// override, hands the player what to play, re-evaluates at the next
// change (a timer) and on every change of the state or the library, and
// inserts the playlist's message every N minutes of music.
type Engine struct {
	o       EngineOptions
	log     *slog.Logger
	kick    chan struct{}
	mu      sync.Mutex
	current Programme
}

// NewEngine returns an engine; Run starts it. The first programme is
// applied by Apply before playback starts, so a power cut resumes the
// right music from the first sample.
func NewEngine(o EngineOptions) *Engine {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MessageUnit == 0 {
		o.MessageUnit = time.Minute
	}
	if o.SwitchNow == nil {
		o.SwitchNow = o.SetPlaylist
	}
	if o.MaxWake == 0 {
		o.MaxWake = maxWake
	}
	if o.Poll == 0 {
		o.Poll = 50 * time.Millisecond
	}
	return &Engine{o: o, log: o.Logger.With("component", "programme"), kick: make(chan struct{}, 1)}
}

// Programme is what plays now and what comes next.
func (e *Engine) Programme() Programme {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.current
}

// Evaluate is the programme at now from the stored state.
func (e *Engine) Evaluate(now time.Time) Programme {
	return Evaluate(e.o.Store.Schedule(), e.o.Store.Override(now), now)
}

// LibraryChanged tells the engine the library changed (tracks added,
// deleted or reordered).
func (e *Engine) LibraryChanged() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// step is one wait for a track boundary: once done(onAir) holds, then is
// handed to the player (nil: nothing).
type step struct {
	done func(onAir string) bool
	then []player.Track
	// music marks the step after which the message clock restarts.
	music bool
}

// run state, owned by Run's goroutine.
type engineState struct {
	prog    Programme
	target  []player.Track // what the programme plays, without a message
	msg     *Message
	pending []step
	msgAt   time.Time // when the next message is due; zero: none
}

// Apply evaluates and hands the player its first sequence at once; mohd
// calls it before playback starts.
func (e *Engine) Apply() {
	now := e.o.Now()
	p := e.Evaluate(now)
	target, _ := e.resolve(p)
	e.o.SetPlaylist(target)
	e.setCurrent(p)
}

func (e *Engine) setCurrent(p Programme) {
	e.mu.Lock()
	old := e.current
	e.current = p
	e.mu.Unlock()
	if e.o.OnChange != nil && !old.same(p) {
		e.o.OnChange(old, p)
	}
}

// resolve maps a programme onto tracks to play, and its message.
func (e *Engine) resolve(p Programme) ([]player.Track, *Message) {
	byID := map[string]player.Track{}
	for _, t := range e.o.Tracks() {
		byID[t.ID] = t
	}
	if p.Track != "" {
		if t, ok := byID[p.Track]; ok {
			return []player.Track{t}, nil
		}
		return nil, nil
	}
	pl, ok := e.o.Store.Playlist(p.Playlist)
	if !ok {
		// A schedule never names a missing playlist (the store refuses
		// it); should it happen, the default plays rather than silence.
		pl, _ = e.o.Store.Playlist(DefaultPlaylist)
	}
	var out []player.Track
	for _, id := range pl.Tracks {
		if t, ok := byID[id]; ok {
			out = append(out, t)
		}
	}
	var msg *Message
	if pl.Message != nil {
		if _, ok := byID[pl.Message.Track]; ok {
			m := *pl.Message
			msg = &m
		}
	}
	return out, msg
}

// maxWake bounds the engine's sleep (see Run).
const maxWake = time.Minute

// Run keeps the programme applied until ctx is done.
func (e *Engine) Run(ctx context.Context) error {
	if e.Programme().Reason == "" {
		e.Apply() // the caller did not: apply now
	}
	var st engineState
	st.prog = e.Programme()
	st.target, st.msg = e.resolve(st.prog)
	if st.msg != nil {
		st.msgAt = e.o.Now().Add(time.Duration(st.msg.EveryMinutes) * e.o.MessageUnit)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	poll := time.NewTicker(e.o.Poll)
	defer poll.Stop()
	for {
		now := e.o.Now()
		if !st.msgAt.IsZero() && !now.Before(st.msgAt) && len(st.pending) == 0 {
			e.startMessage(&st)
		}
		// The earliest of the next change and the next message.
		wake := time.Duration(-1)
		if st.prog.NextChange != nil {
			wake = st.prog.NextChange.Sub(now)
		}
		if !st.msgAt.IsZero() && len(st.pending) == 0 {
			if d := st.msgAt.Sub(now); wake < 0 || d < wake {
				wake = d
			}
		}
		if wake < 0 || wake > e.o.MaxWake {
			// Timers run on the monotonic clock: a wall clock stepped
			// by NTP after boot (a box without a battery-backed clock
			// starts in the past) would leave a long timer aimed at the
			// wrong instant. Looking again every minute costs one
			// evaluation and no write.
			wake = e.o.MaxWake
		}
		timer.Reset(max(wake, time.Millisecond))
		var pollC <-chan time.Time
		if len(st.pending) > 0 {
			pollC = poll.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.o.Store.Changes():
			e.reevaluate(&st)
		case <-e.kick:
			e.reevaluate(&st)
		case <-timer.C:
			e.reevaluate(&st)
		case <-pollC:
			e.advance(&st)
		}
	}
}

// reevaluate applies a new programme or new contents of the current
// one. A change to or from an override switches at once; any other
// change waits for the track on air to end.
func (e *Engine) reevaluate(st *engineState) {
	now := e.o.Now()
	p := e.Evaluate(now)
	target, msg := e.resolve(p)
	atOnce := (p.Reason == ReasonOverride || st.prog.Reason == ReasonOverride) && !p.same(st.prog)
	sameMusic := slices.EqualFunc(target, st.target, func(a, b player.Track) bool { return a.ID == b.ID && a.Path == b.Path })
	msgChanged := !equalMessage(msg, st.msg)
	progChanged := !p.same(st.prog)
	st.prog = p
	e.setCurrent(p)
	if !progChanged && sameMusic && !msgChanged {
		return
	}
	if progChanged {
		e.log.Info("programme", "playlist", p.Playlist, "track", p.Track, "reason", p.Reason, "rule", p.Rule)
	}
	st.target, st.msg = target, msg
	st.msgAt = time.Time{}
	if msg != nil {
		st.msgAt = now.Add(time.Duration(msg.EveryMinutes) * e.o.MessageUnit)
	}
	e.switchTo(st, target, atOnce)
}

func equalMessage(a, b *Message) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// switchTo hands the player target: at once, or keeping the track on
// air to its end (then target follows gaplessly).
func (e *Engine) switchTo(st *engineState, target []player.Track, atOnce bool) {
	st.pending = nil
	onAir := e.o.OnAir()
	i := indexOf(target, onAir)
	if atOnce {
		e.o.SwitchNow(target)
		return
	}
	if onAir == "" || i >= 0 {
		e.o.SetPlaylist(target)
		return
	}
	cur, ok := e.track(onAir)
	if !ok {
		e.o.SetPlaylist(target)
		return
	}
	e.o.SetPlaylist(append([]player.Track{cur}, target...))
	st.pending = []step{{done: func(a string) bool { return a != onAir }, then: target}}
}

func (e *Engine) track(id string) (player.Track, bool) {
	for _, t := range e.o.Tracks() {
		if t.ID == id {
			return t, true
		}
	}
	return player.Track{}, false
}

func indexOf(ts []player.Track, id string) int {
	if id == "" {
		return -1
	}
	for i, t := range ts {
		if t.ID == id {
			return i
		}
	}
	return -1
}

// startMessage inserts the message: after the track on air, or (when it
// interrupts) at once; the music then resumes with the track after the
// one on air (interrupted: the interrupted track, from its start).
func (e *Engine) startMessage(st *engineState) {
	st.msgAt = time.Time{}
	m, ok := e.track(st.msg.Track)
	if !ok || len(st.target) == 0 {
		return
	}
	onAir := e.o.OnAir()
	i := indexOf(st.target, onAir)
	var cur player.Track
	var rest []player.Track // the music from the track after cur, round the loop
	if i >= 0 {
		cur = st.target[i]
		rest = append(slices.Clone(st.target[i+1:]), st.target[:i]...)
	} else {
		rest = slices.Clone(st.target)
	}
	isMsg := func(a string) bool { return a == m.ID }
	notMsg := func(a string) bool { return a != m.ID }
	if st.msg.Interrupt || i < 0 {
		// [m] alone cuts the track on air at once; once m plays, the
		// interrupted track follows it.
		resume := rest
		if i >= 0 {
			resume = append([]player.Track{cur}, rest...)
		}
		e.o.SwitchNow([]player.Track{m})
		st.pending = []step{
			{done: isMsg, then: append([]player.Track{m}, without(resume, m.ID)...)},
			{done: notMsg, then: st.target, music: true},
		}
		e.log.Info("message", "track", m.ID, "interrupt", true)
		return
	}
	e.o.SetPlaylist(append([]player.Track{cur, m}, without(rest, m.ID)...))
	st.pending = []step{
		{done: isMsg},
		{done: notMsg, then: st.target, music: true},
	}
	e.log.Info("message", "track", m.ID, "after", cur.ID)
}

func without(ts []player.Track, id string) []player.Track {
	var out []player.Track
	for _, t := range ts {
		if t.ID != id {
			out = append(out, t)
		}
	}
	return out
}

// advance checks the track on air against the step awaited.
func (e *Engine) advance(st *engineState) {
	for len(st.pending) > 0 {
		s := st.pending[0]
		if !s.done(e.o.OnAir()) {
			return
		}
		st.pending = st.pending[1:]
		if s.then != nil {
			e.o.SetPlaylist(s.then)
		}
		if s.music && st.msg != nil {
			st.msgAt = e.o.Now().Add(time.Duration(st.msg.EveryMinutes) * e.o.MessageUnit)
		}
	}
}
