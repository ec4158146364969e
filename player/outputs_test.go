package player

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseOutputsLists(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []string // String() of each
	}{
		{"alsa", []string{"alsa"}},
		{"alsa:hw:1,0", []string{"alsa:hw:1,0"}},
		{"alsa:plughw:CARD=Device,DEV=0,rtp:239.1.1.1:16384", []string{"alsa:plughw:CARD=Device,DEV=0", "rtp:239.1.1.1:16384?codec=pcmu&ptime=20&ttl=16&dscp=46"}},
		{"null,rtp:239.1.1.1:16384?codec=pcma&ttl=4&dscp=0&iface=eth0,sip", []string{"null", "rtp:239.1.1.1:16384?codec=pcma&ptime=20&ttl=4&dscp=0&iface=eth0", "sip:0.0.0.0:5060"}},
		{"rtp:10.0.0.5:4000", []string{"rtp:10.0.0.5:4000?codec=pcmu&ptime=20&ttl=16&dscp=46"}},
		{"sip:192.0.2.1:5070, null", []string{"sip:192.0.2.1:5070", "null"}},
		{"sip::5062", []string{"sip:0.0.0.0:5062"}},
		{"rtp:[ff05::1]:5004", []string{"rtp:[ff05::1]:5004?codec=pcmu&ptime=20&ttl=16&dscp=46"}},
		{"file:/tmp/a,b.raw,rtp:239.0.0.1:5000", []string{"file:/tmp/a,b.raw", "rtp:239.0.0.1:5000?codec=pcmu&ptime=20&ttl=16&dscp=46"}},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			outs, err := ParseOutputs(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range outs {
				got = append(got, o.String())
				// Every canonical form parses back to the same output.
				again, err := ParseOutput(o.String())
				if err != nil || again != o {
					t.Fatalf("round trip of %q = %+v, %v", o.String(), again, err)
				}
			}
			if strings.Join(got, " | ") != strings.Join(tc.want, " | ") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	o, _ := ParseOutput("rtp:239.1.1.1:16384")
	if o.Codec != "pcmu" || o.PtimeMS != 20 || o.TTL != 16 || o.DSCP != 46 || o.Target() != "239.1.1.1:16384" || !o.Network() || o.Paced() {
		t.Fatalf("rtp defaults: %+v", o)
	}
}

func TestParseOutputsErrors(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"", "empty spec"},
		{"null,null", `output "null" is listed twice`},
		{"alsa,null", `only one of alsa, file and null may be listed`},
		{"alsa:hw:0,alsa:hw:1", `only one of alsa, file and null`},
		{"rtp:239.1.1.1:16384,rtp:239.1.1.1:16384?codec=pcma", "listed twice"},
		{"sip,sip:0.0.0.0:5060", "listed twice"},
		{"null,pulse", `unknown kind "pulse"`},
		{"rtp", `"rtp:" needs GROUP:PORT`},
		{"rtp:239.1.1.1", "want IP:PORT"},
		{"rtp:example.com:5004", "not an IP address"},
		{"rtp:239.1.1.1:0", "want 1..65535"},
		{"rtp:239.1.1.1:70000", "want 1..65535"},
		{"rtp:239.1.1.1:5004?codec=g722", `codec "g722"`},
		{"rtp:239.1.1.1:5004?ptime=30", "only 20 (ms)"},
		{"rtp:239.1.1.1:5004?ttl=0", "ttl"},
		{"rtp:239.1.1.1:5004?ttl=256", "ttl"},
		{"rtp:239.1.1.1:5004?dscp=64", "dscp"},
		{"rtp:239.1.1.1:5004?iface=a/b", "iface"},
		{"rtp:239.1.1.1:5004?ttl=1&ttl=2", "given 2 times"},
		{"rtp:239.1.1.1:5004?volume=3", `unknown option "volume"`},
		{"rtp:239.1.1.1:5004?%zz", "options"},
		{"sip:", "empty address"},
		{"sip:5060", "want IP:PORT"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := ParseOutputs(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// flakySink takes failAfter bytes, then fails every write; it paces
// nothing, so tests run at once.
type flakySink struct {
	failAfter int
	took      int
	closed    atomic.Bool
}

func (s *flakySink) Write(p []byte) (int, error) {
	if s.closed.Load() {
		return 0, ErrSinkClosed
	}
	n := min(len(p), max(0, s.failAfter-s.took))
	s.took += n
	if n < len(p) {
		return n, errors.New("card gone")
	}
	return n, nil
}

func (s *flakySink) Close() error { s.closed.Store(true); return nil }

type teeCount struct {
	mu sync.Mutex
	n  int
}

func (c *teeCount) write(p []byte) { c.mu.Lock(); c.n += len(p); c.mu.Unlock() }
func (c *teeCount) len() int       { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// With network outputs listed, a failing sound card is reopened on its
// own while a null sink keeps the pace: the telephone signal gets every
// byte, and the status says what happened.
func TestLineOutputsPacedFailureKeepsNetworkPlaying(t *testing.T) {
	var tee teeCount
	var opens atomic.Int32
	var sinks []*flakySink
	var mu sync.Mutex
	lo := NewLineOutputs(LineOutputsOptions{
		Paced:   Output{Kind: OutputALSA, Device: "hw:9"},
		Network: true,
		Tee:     tee.write,
		Logger:  quiet(),
		Backoff: 20 * time.Millisecond,
		Open: func(ctx context.Context, o Output, _ *slog.Logger) (Sink, error) {
			n := opens.Add(1)
			if n == 2 {
				return nil, errors.New("no such card")
			}
			s := &flakySink{failAfter: 10000}
			mu.Lock()
			sinks = append(sinks, s)
			mu.Unlock()
			return s, nil
		},
	})
	lo.AddStatus(func() []OutputStatus {
		return []OutputStatus{{Kind: OutputRTP, Target: "239.1.1.1:5004", State: OutputStateOK}}
	})
	s, err := lo.OpenSink(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 4*441) // 10 ms
	start := time.Now()
	total := 0
	sawFailed := false
	for time.Since(start) < 600*time.Millisecond {
		n, err := s.Write(block)
		if err != nil || n != len(block) {
			t.Fatalf("write: %d, %v", n, err)
		}
		total += n
		if st := lo.Statuses()[0]; st.State == OutputStateFailed {
			sawFailed = true
			if !strings.Contains(st.LastError, "card gone") && !strings.Contains(st.LastError, "no such card") {
				t.Fatalf("last error %q", st.LastError)
			}
		}
	}
	if tee.len() != total {
		t.Fatalf("tee got %d of %d bytes", tee.len(), total)
	}
	if !sawFailed || opens.Load() < 3 {
		t.Fatalf("failed seen %v, opens %d", sawFailed, opens.Load())
	}
	sts := lo.Statuses()
	if len(sts) != 2 || sts[0].Kind != OutputALSA || sts[0].Target != "hw:9" || sts[1].Kind != OutputRTP {
		t.Fatalf("statuses %+v", sts)
	}
	// The null sink paced the time the card was down: 600 ms of writing
	// took about 600 ms of audio, not a burst.
	if audio := time.Duration(total/4) * time.Second / SampleRate; audio > 2*time.Second {
		t.Fatalf("%v of audio in 600 ms: the fallback did not pace", audio)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(block); !errors.Is(err, ErrSinkClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// The paced output alone fails as before: the backend (and its watchdog)
// see the error; the tee still gets what it played.
func TestLineOutputsAloneFailsToBackend(t *testing.T) {
	var tee teeCount
	fail := true
	lo := NewLineOutputs(LineOutputsOptions{
		Paced:  Output{Kind: OutputALSA},
		Tee:    tee.write,
		Logger: quiet(),
		Open: func(ctx context.Context, o Output, _ *slog.Logger) (Sink, error) {
			if fail {
				return nil, errors.New("no card")
			}
			return &flakySink{failAfter: 100}, nil
		},
	})
	if _, err := lo.OpenSink(context.Background()); err == nil || lo.Statuses()[0].State != OutputStateFailed {
		t.Fatalf("open: %v, %+v", err, lo.Statuses())
	}
	fail = false
	s, err := lo.OpenSink(context.Background())
	if err != nil || lo.Statuses()[0].State != OutputStateOK {
		t.Fatalf("open: %v, %+v", err, lo.Statuses())
	}
	if n, err := s.Write(make([]byte, 400)); err == nil || n != 100 {
		t.Fatalf("write: %d, %v", n, err)
	}
	if tee.len() != 100 || lo.Statuses()[0].State != OutputStateFailed {
		t.Fatalf("tee %d, %+v", tee.len(), lo.Statuses())
	}
}

// With only network outputs, a paced null sink is the clock and is not
// reported as an output.
func TestLineOutputsClockOnly(t *testing.T) {
	var tee teeCount
	lo := NewLineOutputs(LineOutputsOptions{Clock: true, Tee: tee.write, Logger: quiet()})
	s, err := lo.OpenSink(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	for range 30 {
		if _, err := s.Write(make([]byte, 4*2205)); err != nil {
			t.Fatal(err)
		}
	}
	// 1.5 s of audio, paced (less the pacer's lead); unpaced it would
	// take a few ms.
	if el := time.Since(start); el < time.Second {
		t.Fatalf("1.5 s of audio took %v: not paced", el)
	}
	if tee.len() != 30*4*2205 || len(lo.Statuses()) != 0 {
		t.Fatalf("tee %d, statuses %+v", tee.len(), lo.Statuses())
	}
}

func TestHealthFromOutputs(t *testing.T) {
	now := time.Now()
	base := Status{Wanted: StatePlaying, Volume: 80}
	base.State = StatePlaying
	one := base
	one.Outputs = []OutputStatus{{Kind: "alsa", Target: "default", State: "ok"}, {Kind: "rtp", Target: "239.1.1.1:5004", State: "failed", LastError: "network unreachable"}}
	h := AssessHealth(one, true, nil, now)
	if h.State != HealthWarning || !strings.Contains(h.Reason, "output rtp 239.1.1.1:5004 failed: network unreachable") || h.Silent {
		t.Fatalf("one of two down: %+v", h)
	}
	all := base
	all.Outputs = []OutputStatus{{Kind: "alsa", Target: "default", State: "failed"}, {Kind: "rtp", Target: "239.1.1.1:5004", State: "retrying"}}
	h = AssessHealth(all, true, nil, now)
	if h.State != HealthCritical || !strings.Contains(h.Reason, "no output carries audio") || !h.Silent {
		t.Fatalf("all down: %+v", h)
	}
	ok := base
	ok.Outputs = []OutputStatus{{Kind: "rtp", Target: "x", State: "ok"}}
	if h := AssessHealth(ok, true, nil, now); h.State != HealthOK {
		t.Fatalf("all up: %+v", h)
	}
}

func TestToneRequestBounds(t *testing.T) {
	for _, tc := range []struct {
		t  ToneRequest
		ok bool
	}{
		{ToneRequest{Hz: 1000, DBFS: -20, Duration: time.Second}, true},
		{ToneRequest{Hz: 1000, DBFS: -20, Duration: 0}, true},
		{ToneRequest{Hz: 1000, DBFS: 0, Duration: 600 * time.Second}, true},
		{ToneRequest{Hz: 10, DBFS: -20, Duration: time.Second}, false},
		{ToneRequest{Hz: 5000, DBFS: -20, Duration: time.Second}, false},
		{ToneRequest{Hz: math.NaN(), DBFS: -20, Duration: time.Second}, false},
		{ToneRequest{Hz: 1000, DBFS: 1, Duration: time.Second}, false},
		{ToneRequest{Hz: 1000, DBFS: -61, Duration: time.Second}, false},
		{ToneRequest{Hz: 1000, DBFS: math.NaN(), Duration: time.Second}, false},
		{ToneRequest{Hz: 1000, DBFS: -20, Duration: 601 * time.Second}, false},
		{ToneRequest{Hz: 1000, DBFS: -20, Duration: -time.Second}, false},
	} {
		if err := tc.t.Check(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.t, err)
		}
	}
	if got := (ToneRequest{DBFS: -22.17}).DBm0(); math.Abs(got+19) > 1e-9 {
		t.Fatalf("-22.17 dBFS = %v dBm0", got)
	}
}

// The tone replaces the music on the line-out at the level asked for,
// then the track resumes on the sample where it stopped.
func TestDirectToneThenMusicResumes(t *testing.T) {
	dir := t.TempDir()
	src, path := sineTrack(t, dir, "s.mp3")
	var c capture
	g := newGate(len(src) / 2)
	hook := func(total int, p []byte) (int, error) {
		time.Sleep(time.Millisecond) // a few hundred blocks of tone, not millions
		return g.hook(total, p)
	}
	var tones []ToneRequest
	var tmu sync.Mutex
	d, stop := startDirect(t, DirectOptions{OpenSink: sharedCapture(&c, hook), OnTone: func(t ToneRequest) {
		tmu.Lock()
		tones = append(tones, t)
		tmu.Unlock()
	}}, []Track{{ID: "s", Path: path}})
	<-g.reached
	if err := d.Tone(ToneRequest{Hz: 1000, DBFS: -20, Duration: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	waitUntil(t, 10*time.Second, "tone", func() bool { return d.toneOn() })
	waitUntil(t, 10*time.Second, "tone over", func() bool { return !d.toneOn() })
	mark := c.len()
	waitUntil(t, 30*time.Second, "2 laps after the tone", func() bool { return c.len() >= mark+2*len(src) })
	stop()
	// Split the capture into blocks: tone blocks peak at -20 dBFS
	// (3277), music ones at 16000.
	all := c.bytes()
	blk := defaultBlockFrames * BytesPerFrame
	var music []byte
	toneBlocks := 0
	wantPeak := 32767 * math.Pow(10, -20.0/20)
	for off := 0; off+blk <= len(all); off += blk {
		b := all[off : off+blk]
		peak := 0.0
		for i := 0; i < len(b); i += 2 {
			peak = max(peak, math.Abs(float64(int16(binary.LittleEndian.Uint16(b[i:])))))
		}
		if peak < 8000 {
			toneBlocks++
			if math.Abs(peak-wantPeak) > 2 {
				t.Fatalf("tone peak %.0f, want %.0f", peak, wantPeak)
			}
			continue
		}
		music = append(music, b...)
	}
	if toneBlocks < 3 {
		t.Fatalf("%d tone blocks", toneBlocks)
	}
	checkContinuousSine(t, music, src) // the music lost and repeated nothing
	tmu.Lock()
	defer tmu.Unlock()
	if len(tones) != 1 || tones[0].Hz != 1000 {
		t.Fatalf("OnTone got %+v", tones)
	}
}

// The MPD backend cannot play a tone: the player says so.
func TestPlayerToneNeedsDirect(t *testing.T) {
	m, err := NewMPD(MPDOptions{Logger: quiet(), Addr: "127.0.0.1:1", RenditionDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Backend: m})
	if err := p.Tone(ToneRequest{Hz: 1000, DBFS: -20, Duration: time.Second}); !errors.Is(err, ErrToneUnsupported) {
		t.Fatalf("err = %v", err)
	}
	if err := p.Tone(ToneRequest{Hz: 1, DBFS: -20, Duration: time.Second}); err == nil || errors.Is(err, ErrToneUnsupported) {
		t.Fatalf("bad tone: %v", err)
	}
}
