package player

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fhs/gompd/v2/mpd"
)

// MPDOptions configure the MPD backend.
type MPDOptions struct {
	Logger *slog.Logger
	// Output is where the owned MPD sends its audio.
	Output Output
	// MusicDir is the library folder. The owned MPD plays tracks by
	// absolute path and does not need it; an MPD reached over TCP plays
	// them by their path relative to it (its music_directory).
	MusicDir string
	// RunDir holds what the owned MPD writes (config, socket, database,
	// the level FIFO): tmpfs on the appliance.
	RunDir string
	// Binary is the mpd executable; default "mpd" from PATH.
	Binary string
	// Addr, when set, is an MPD mohd does not own: "host:port" or the
	// path of a unix socket. Then RestartCommand is the restart rung.
	Addr           string
	RestartCommand []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Crossfade is MPD's crossfade in seconds; 0 (the default) keeps the
	// loop gapless. mohd restores it whenever another client changes it.
	Crossfade int
	// CallTimeout bounds every MPD command (default 1.5 s); PollInterval
	// is how often status is read (default 500 ms, well under MPD's 60 s
	// connection_timeout); StartTimeout bounds an MPD start (default 15 s).
	CallTimeout  time.Duration
	PollInterval time.Duration
	StartTimeout time.Duration
}

// MPD is the backend that plays through Music Player Daemon. mohd is the
// source of truth for MPD's whole player state — queue, outputs, repeat,
// single, random, consume, crossfade, volume, play state: it rebuilds it
// after every MPD restart, keeps the queue in sync as the playlist
// changes, and reports any change another client makes as a fault that
// the watchdog's replay rung undoes (see drift).
type MPD struct {
	o       MPDOptions
	log     *slog.Logger
	now     func() time.Time
	network string
	addr    string
	owned   bool
	meter   *levelMeter // what the owned MPD actually played
	kick    chan struct{}
	reqs    chan mpdRecoverReq
	// lostTrack is set when MPD logged a track it could not open.
	lostTrack atomic.Bool

	mu   sync.Mutex
	want mpdWant
	seen mpdSeen
	// lineFailed is MPD's last complaint that it could not open the line
	// output, and when: MPD then plays on into the level output alone and
	// says nothing in its status (measured, alsa:hw:9,0).
	lineFailed   string
	lineFailedAt time.Time
}

// mpdReopenHold is how long after MPD's last failure to open the line
// output it still counts as failed: MPD retries a failed output every
// 10 s while playing and logs each failure, but never a success.
const mpdReopenHold = 15 * time.Second

// mpdWant is what the Player asked for; generations tell the owner
// goroutine which changes it has not applied yet.
type mpdWant struct {
	playlist    []Track
	playlistGen uint64
	playing     bool
	playGen     uint64
	volume      int // -1 until set
	volumeGen   uint64
	next        int // pending Next calls
}

// mpdSeen is what the owner goroutine last saw of MPD.
type mpdSeen struct {
	state     State
	fault     string
	track     *Track
	index     int
	elapsed   time.Duration
	duration  time.Duration
	pid       int
	skipped   []Skip
	frames    uint64 // external mode: estimated from elapsed
	lastAudio time.Time
}

type mpdRecoverReq struct {
	ctx   context.Context
	rung  Rung
	reply chan error
}

// NewMPD returns the MPD backend; call Run to start it.
func NewMPD(o MPDOptions) (*MPD, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Binary == "" {
		o.Binary = "mpd"
	}
	if o.CallTimeout <= 0 {
		// A local MPD answers in milliseconds; 1.5 s plus one poll keeps
		// a frozen MPD's detection under the 3 s target.
		o.CallTimeout = 1500 * time.Millisecond
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 15 * time.Second
	}
	if o.Crossfade < 0 {
		return nil, fmt.Errorf("mpd backend: crossfade %d s is negative", o.Crossfade)
	}
	if o.Addr == "" {
		if o.RunDir == "" {
			return nil, errors.New("mpd backend: a run dir is required")
		}
		if _, err := (mpdConfig{RunDir: o.RunDir, Output: o.Output}).render(); err != nil {
			return nil, err
		}
		if sock := filepath.Join(o.RunDir, mpdSocketName); len(sock) > 107 {
			return nil, fmt.Errorf("mpd backend: socket path %s is longer than a unix socket allows", sock)
		}
	} else if o.MusicDir == "" && !strings.HasPrefix(o.Addr, "/") {
		return nil, errors.New("mpd backend: an MPD reached over TCP needs the music dir it shares with mohd")
	}
	m := &MPD{
		o:     o,
		log:   o.Logger.With("component", "mpd"),
		now:   o.Now,
		owned: o.Addr == "",
		kick:  make(chan struct{}, 1),
		reqs:  make(chan mpdRecoverReq),
		want:  mpdWant{volume: -1},
		seen:  mpdSeen{state: StateStarting, index: -1},
	}
	switch {
	case m.owned:
		m.network, m.addr = "unix", filepath.Join(o.RunDir, mpdSocketName)
		m.meter = newLevelMeter(o.Now)
	case strings.HasPrefix(o.Addr, "/"):
		m.network, m.addr = "unix", o.Addr
	default:
		m.network, m.addr = "tcp", o.Addr
	}
	return m, nil
}

// Name implements Backend.
func (m *MPD) Name() string { return "mpd" }

func (m *MPD) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// SetPlaylist implements Backend.
func (m *MPD) SetPlaylist(tracks []Track) {
	m.mu.Lock()
	m.want.playlist = append([]Track(nil), tracks...)
	m.want.playlistGen++
	m.mu.Unlock()
	m.poke()
}

// Play implements Backend.
func (m *MPD) Play() { m.setPlaying(true) }

// Stop implements Backend.
func (m *MPD) Stop() { m.setPlaying(false) }

func (m *MPD) setPlaying(on bool) {
	m.mu.Lock()
	m.want.playing = on
	m.want.playGen++
	m.mu.Unlock()
	m.poke()
}

// Next implements Backend.
func (m *MPD) Next() {
	m.mu.Lock()
	m.want.next++
	m.mu.Unlock()
	m.poke()
}

// SetVolume implements Backend. MPD's software mixer ramps nothing, but
// it applies the change between chunks, so there is no click.
func (m *MPD) SetVolume(v int) {
	m.mu.Lock()
	m.want.volume = min(max(v, 0), 100)
	m.want.volumeGen++
	m.mu.Unlock()
	m.poke()
}

// PID is the process id of the MPD mohd owns, 0 when none runs.
func (m *MPD) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen.pid
}

// Status implements Backend.
func (m *MPD) Status() BackendStatus {
	m.mu.Lock()
	s := m.seen
	w := m.want
	m.mu.Unlock()
	bs := BackendStatus{
		State:    s.state,
		Track:    s.track,
		Index:    s.index,
		Position: s.elapsed,
		Duration: s.duration,
		Fault:    s.fault,
		Skipped:  append([]Skip(nil), s.skipped...),
		// Silence is what the admin asked for at volume 0.
		SourceSilent: w.volume == 0,
	}
	if m.meter != nil {
		bs.Frames, bs.LevelDBFS, bs.LastAudio = m.meter.snapshot()
	} else {
		// An MPD mohd does not own cannot be listened to: progress of
		// elapsed stands in for frames, and the level is unknown.
		bs.Frames, bs.LevelDBFS, bs.LastAudio = s.frames, SilenceDBFS, s.lastAudio
	}
	return bs
}

// Recover implements Backend: it performs one rung in the goroutine that
// owns the MPD connection.
func (m *MPD) Recover(ctx context.Context, rung Rung) error {
	r := mpdRecoverReq{ctx: ctx, rung: rung, reply: make(chan error, 1)}
	select {
	case m.reqs <- r:
	case <-ctx.Done():
		return fmt.Errorf("mpd recover %s: %w", rung, ctx.Err())
	}
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("mpd recover %s: %w", rung, ctx.Err())
	}
}

// Run implements Backend. Only this goroutine talks to MPD.
func (m *MPD) Run(ctx context.Context) error {
	o := &mpdOwner{m: m, log: m.log, lastSong: -1, extLastSong: -1}
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
		case <-m.kick:
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
func (m *MPD) lineFault() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lineFailed == "" || m.now().Sub(m.lineFailedAt) > mpdReopenHold {
		return ""
	}
	return fmt.Sprintf("sink-failed: mpd cannot open output %q: %s (only mohd's level output hears the music)", mpdOutputName, m.lineFailed)
}

// listen keeps draining the level FIFO for the life of the backend.
func (m *MPD) listen(ctx context.Context, fifo string) {
	for ctx.Err() == nil {
		if err := readLevelFIFO(ctx, fifo, m.meter, m.log); err != nil {
			m.log.Error("level fifo", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// mpdOwner is the state only Run's goroutine touches.
type mpdOwner struct {
	m    *MPD
	log  *slog.Logger
	conn *mpdConn
	proc *mpdProc

	applied   mpdWant // generations applied
	queue     []queued
	queueVer  string // MPD's playlist version after mohd's last change
	lastSong  int    // queue position last seen playing, restored after a restart
	procFault string // why MPD is not running
	callFault string // the last call that failed or timed out
	// refused holds tracks MPD would not queue, with their mtime then,
	// so they are not offered again (and the queue rebuilt) until changed.
	refused    map[string]time.Time
	recovering bool
	// outputs are the names of the MPD outputs that must stay enabled
	// (learned at the first connection; see learnOutputs).
	outputs []string
	// drifted is the drift last logged, so each change is logged once.
	drifted     string
	extLastSong int
	extElapsed  time.Duration
	extAt       time.Time
}

// queued is one queue entry mohd put into MPD.
type queued struct {
	track Track
	index int    // index in the wanted playlist
	file  string // MPD's "file" for it
	uri   string // what mohd added
}

// abort resolves a stuck call: killing the MPD mohd owns drops the
// connection, so the blocked read returns. For an MPD mohd does not own
// the call is abandoned (see mpdConn).
func (o *mpdOwner) abort(reason string) {
	o.callFault = "mpd-timeout: " + reason
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
		o.procFault = "mpd-exited: " + err.Error()
		o.setFault(StateFailed)
		return err
	}
	m.mu.Lock()
	m.seen.pid = o.proc.PID()
	m.lineFailed = "" // a new MPD opens its outputs afresh
	m.mu.Unlock()
	o.log.Info("mpd started", "pid", o.proc.PID())
	sctx, cancel := context.WithTimeout(ctx, m.o.StartTimeout)
	defer cancel()
	if err := o.proc.waitReady(sctx, m.network, m.addr); err != nil {
		o.proc.kill()
		o.procExited()
		o.procFault = "mpd-exited: " + err.Error()
		o.setFault(StateFailed)
		return err
	}
	o.procFault = ""
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
	if strings.HasPrefix(o.callFault, "mpd-disconnected") {
		o.callFault = ""
	}
	o.procFault = "mpd-exited: " + text
	o.m.mu.Lock()
	o.m.seen.pid = 0
	o.m.mu.Unlock()
	o.log.Warn("mpd exited", "status", text)
	o.setFault(StateFailed)
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
	if o.procFault != "" && !strings.HasPrefix(fault, "mpd-timeout") {
		fault = o.procFault
	}
	if fault == "" && !o.conn.connected() {
		fault = "mpd-disconnected: not connected"
	}
	o.m.mu.Lock()
	o.m.seen.state = state
	o.m.seen.fault = fault
	o.m.mu.Unlock()
}

// connectAndAssert connects and makes MPD match what mohd wants.
func (o *mpdOwner) connectAndAssert() error {
	if err := o.conn.connect(); err != nil {
		o.callFault = "mpd-disconnected: " + err.Error()
		o.setFault(StateFailed)
		return err
	}
	o.callFault = ""
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
		o.callFault = "mpd-disconnected: " + err.Error()
		o.setFault(StateFailed)
	}
}

// failed records a failed call: an MPD ACK is only logged, anything
// else means the connection is gone.
func (o *mpdOwner) failed(err error) {
	var ack mpd.Error
	if errors.As(err, &ack) {
		o.log.Warn("mpd command", "err", err)
		return
	}
	if !strings.HasPrefix(o.callFault, "mpd-timeout") {
		o.callFault = "mpd-disconnected: " + err.Error()
	}
	o.reapIfDead()
	o.setFault(StateFailed)
}

// assert makes MPD's options, outputs, queue, volume and play state
// match what mohd wants. full also forces play when wanted (the replay
// rung).
func (o *mpdOwner) assert(full bool) error {
	m := o.m
	if err := o.assertOptions(); err != nil {
		return err
	}
	m.mu.Lock()
	o.applied.playlistGen = m.want.playlistGen - 1 // force a queue check
	o.applied.volumeGen = m.want.volumeGen - 1
	o.applied.playGen = m.want.playGen - 1
	m.mu.Unlock()
	if err := o.applyWith(true); err != nil {
		return err
	}
	return nil
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
// queue), "" when there is none. Only another client changes these: mohd
// sets them all in assert and notes the queue version after its own
// changes.
func (o *mpdOwner) drift(st mpd.Attrs, outs []mpd.Attrs) string {
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
		return fmt.Sprintf("mpd-output: another client %s: %s", strings.Join(off, ", "), what)
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
		return "mpd-options: changed by another client: " + strings.Join(opts, ", ")
	}
	// Last: consume or random change the queue too, and the cause is
	// what the event should name.
	if v := st["playlist"]; o.queueVer != "" && v != o.queueVer {
		return fmt.Sprintf("mpd-queue: another client changed the queue (length %s, mohd queued %d)", st["playlistlength"], len(o.queue))
	}
	return ""
}

// noteDrift logs each change by another client once, and its end.
func (o *mpdOwner) noteDrift(drift string) {
	if drift == o.drifted {
		return
	}
	if drift != "" {
		o.log.Warn("mpd player state changed behind mohd's back", "fault", drift)
	} else {
		o.log.Info("mpd player state is mohd's again", "was", o.drifted)
	}
	o.drifted = drift
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
	m := o.m
	m.mu.Lock()
	w := m.want
	w.playlist = append([]Track(nil), m.want.playlist...)
	m.want.next = 0
	m.mu.Unlock()
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

// uri is what mohd adds to MPD's queue for a track. Over a unix socket
// MPD 0.23 plays any local file by file:// URI (measured), so the owned
// MPD needs no database update and the fallback track may live outside
// the music folder. Over TCP only paths inside MusicDir can be played.
func (o *mpdOwner) uri(t Track) (uri, file string, err error) {
	if o.m.network == "unix" {
		abs, err := filepath.Abs(t.Path)
		if err != nil {
			return "", "", err
		}
		return "file://" + abs, abs, nil
	}
	rel, err := filepath.Rel(o.m.o.MusicDir, t.Path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return "", "", fmt.Errorf("%s is outside the music folder of an MPD reached over TCP", t.Path)
	}
	return rel, rel, nil
}

// syncQueue makes MPD's queue the wanted playlist without interrupting
// the song on air when it is still in the playlist: every other entry is
// deleted and the rest added around it in one command list.
func (o *mpdOwner) syncQueue(tracks []Track) error {
	var want []queued
	for i, t := range tracks {
		fi, err := os.Stat(t.Path)
		if err != nil {
			o.skip(t, fmt.Sprintf("cannot read: %v", err))
			continue
		}
		uri, file, err := o.uri(t)
		if err != nil {
			o.skip(t, err.Error())
			continue
		}
		if at, ok := o.refused[uri]; ok && at.Equal(fi.ModTime()) {
			continue // refused before and unchanged since: already reported
		}
		want = append(want, queued{track: t, index: i, file: file, uri: uri})
	}
	if o.m.network == "tcp" {
		if err := o.updateDB(); err != nil {
			return err
		}
	}
	var items []mpd.Attrs
	if err := o.conn.do("playlistinfo", func(c *mpd.Client) error {
		var err error
		items, err = c.PlaylistInfo(-1, -1)
		return err
	}); err != nil {
		return err
	}
	same := len(items) == len(want)
	for i := 0; same && i < len(items); i++ {
		same = items[i]["file"] == want[i].file
	}
	if same {
		o.queue = want
		return o.noteQueueVersion()
	}
	st, err := o.status()
	if err != nil {
		return err
	}
	cur, _ := strconv.Atoi(st["song"])
	curID := st["songid"]
	keep := -1
	if curID != "" && cur >= 0 && cur < len(items) {
		for i, q := range want {
			if q.file == items[cur]["file"] && (keep < 0 || i == cur) {
				keep = i
			}
		}
	}
	err = o.conn.do("queue", func(c *mpd.Client) error {
		cl := c.BeginCommandList()
		if keep < 0 {
			cl.Clear()
			for _, q := range want {
				cl.Add(q.uri)
			}
		} else {
			for _, it := range items {
				if it["Id"] != curID {
					id, _ := strconv.Atoi(it["Id"])
					cl.DeleteID(id)
				}
			}
			for i := 0; i < keep; i++ {
				cl.AddID(want[i].uri, i)
			}
			for _, q := range want[keep+1:] {
				cl.Add(q.uri)
			}
		}
		return cl.End()
	})
	var ack mpd.Error
	if errors.As(err, &ack) {
		// MPD refused one entry; the list stopped half-way. Build the
		// queue one track at a time, leaving out (and reporting) what
		// MPD refuses, so the next refresh does not retry forever.
		o.log.Warn("mpd refused the queue; adding tracks one by one", "err", err)
		want, err = o.addEach(want)
		keep = -1
	}
	if err != nil {
		return err
	}
	o.queue = want
	o.log.Info("mpd queue rebuilt", "tracks", len(want), "kept_on_air", keep >= 0)
	if keep < 0 && len(want) > 0 && st["state"] == "play" {
		// The song on air was removed: start the new playlist.
		if err := o.conn.do("play", func(c *mpd.Client) error { return c.Play(0) }); err != nil {
			return err
		}
	}
	return o.noteQueueVersion()
}

// addEach rebuilds the queue track by track and returns what MPD took.
func (o *mpdOwner) addEach(want []queued) ([]queued, error) {
	if err := o.conn.do("clear", func(c *mpd.Client) error { return c.Clear() }); err != nil {
		return nil, err
	}
	var took []queued
	for _, q := range want {
		err := o.conn.do("add", func(c *mpd.Client) error { return c.Add(q.uri) })
		var ack mpd.Error
		switch {
		case errors.As(err, &ack):
			o.skip(q.track, "mpd refused it: "+ack.Message)
			if fi, err := os.Stat(q.track.Path); err == nil {
				if o.refused == nil {
					o.refused = map[string]time.Time{}
				}
				o.refused[q.uri] = fi.ModTime()
			}
		case err != nil:
			return nil, err
		default:
			took = append(took, q)
		}
	}
	return took, nil
}

// noteQueueVersion remembers MPD's playlist version after mohd's change,
// so a change by anyone else is noticed and undone.
func (o *mpdOwner) noteQueueVersion() error {
	st, err := o.status()
	if err != nil {
		return err
	}
	o.queueVer = st["playlist"]
	return nil
}

// updateDB runs MPD's database update and waits for it (TCP mode only,
// where tracks are played by their path in the database).
func (o *mpdOwner) updateDB() error {
	if err := o.conn.do("update", func(c *mpd.Client) error { _, err := c.Update(""); return err }); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := o.status()
		if err != nil {
			return err
		}
		if _, busy := st["updating_db"]; !busy {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("mpd database update did not finish in 60s")
}

// skip records a track left out of the queue.
func (o *mpdOwner) skip(t Track, reason string) {
	m := o.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.seen.skipped {
		if s.TrackID == t.ID && s.Reason == reason {
			return
		}
	}
	o.log.Warn("track skipped", "track", t.Name, "reason", reason)
	m.seen.skipped = append(m.seen.skipped, Skip{TrackID: t.ID, Name: t.Name, Reason: reason, At: m.now()})
	if n := len(m.seen.skipped); n > 20 {
		m.seen.skipped = m.seen.skipped[n-20:]
	}
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
	m.mu.Lock()
	w := m.want
	m.mu.Unlock()
	drift := o.drift(st, outs)
	if drift != "" && !w.playing && !o.recovering {
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
			drift = ""
		}
	}
	o.noteDrift(drift)

	s := mpdSeen{index: -1}
	pos, perr := strconv.Atoi(st["song"])
	if perr == nil && pos >= 0 && pos < len(o.queue) {
		if (pos != o.lastSong || o.m.lostTrack.Swap(false)) && o.queueLost() {
			// MPD skips a file it cannot open (measured) without an
			// error in its status: mohd drops it and reports it.
			if err := o.syncQueue(o.wantedPlaylist()); err != nil {
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
	state := st["state"]
	var fault string
	vol, verr := strconv.Atoi(st["volume"])
	var lineFault string
	if m.owned {
		lineFault = m.lineFault()
	}
	switch {
	case st["error"] != "":
		fault = "mpd-error: " + st["error"]
		if drift != "" {
			// The error is what the drift caused (no output left to
			// open): the class picks the clear-error rung, whose replay
			// also undoes the drift; the text names the cause.
			fault += " (" + drift + ")"
		}
	case lineFault != "":
		// The class picks the restart rung (a new MPD opens its outputs
		// at once) and then the ladder's backoff, as for the direct
		// backend's missing card.
		fault = lineFault
	case drift != "":
		// Another client changed what mohd owns; the watchdog's replay
		// rung puts it back, and until then nothing may call the line
		// healthy (a disabled line output still feeds the level output).
		fault = drift
	case w.playing && state == "stop":
		fault = "mpd-stopped: mpd is stopped but playback is wanted"
	case w.playing && state == "pause":
		fault = "mpd-paused: mpd is paused but playback is wanted"
	case w.volume >= 0 && verr == nil && vol >= 0 && vol != w.volume:
		fault = fmt.Sprintf("mpd-volume: mpd volume is %d, mohd set %d", vol, w.volume)
	}
	s.state = StateStopped
	if state == "play" {
		s.state = StatePlaying
	}
	if o.recovering {
		s.state = StateRecovering
	}
	// Progress of an MPD mohd cannot listen to.
	now := m.now()
	if !m.owned {
		if state == "play" && (pos != o.extLastSong || s.elapsed != o.extElapsed) && !o.extAt.IsZero() {
			m.mu.Lock()
			m.seen.frames += uint64(now.Sub(o.extAt).Seconds() * SampleRate)
			m.seen.lastAudio = now
			m.mu.Unlock()
		}
		o.extLastSong, o.extElapsed, o.extAt = pos, s.elapsed, now
	}
	o.callFault = ""
	m.mu.Lock()
	s.pid, s.skipped, s.frames, s.lastAudio = m.seen.pid, m.seen.skipped, m.seen.frames, m.seen.lastAudio
	s.fault = fault
	m.seen = s
	m.mu.Unlock()
}

// queueLost reports whether a queued file has disappeared.
func (o *mpdOwner) queueLost() bool {
	for _, q := range o.queue {
		if _, err := os.Stat(q.track.Path); err != nil {
			return true
		}
	}
	return false
}

func (o *mpdOwner) wantedPlaylist() []Track {
	o.m.mu.Lock()
	defer o.m.mu.Unlock()
	return append([]Track(nil), o.m.want.playlist...)
}

func secs(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Second))
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
	o.m.mu.Lock()
	playing := o.m.want.playing
	o.m.mu.Unlock()
	return o.setPlay(playing)
}

// runRestartCommand restarts an MPD mohd does not own and waits for it.
func (o *mpdOwner) runRestartCommand(ctx context.Context) error {
	o.conn.close()
	cctx, cancel := context.WithTimeout(ctx, o.m.o.StartTimeout)
	defer cancel()
	args := o.m.o.RestartCommand
	out, err := exec.CommandContext(cctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mpd restart command: %w: %s", err, strings.TrimSpace(string(out)))
	}
	for {
		if err := probeMPD(cctx, o.m.network, o.m.addr, time.Second); err == nil {
			return nil
		}
		select {
		case <-cctx.Done():
			return fmt.Errorf("mpd not back after restart command: %w", cctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
