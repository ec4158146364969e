package webui

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/phone"
	"github.com/mohproject/moh/internal/phone/phonetest"
)

// streamServer is a real Server (its own listener, timeouts and
// connection limiter) fed by a hub that publishes a counter every 20 ms:
// sample n of the signal is int16(n), so a reader can tell a gap.
type streamServer struct {
	s     *Server
	base  string
	token string
}

func newStreamServer(t *testing.T, max int, withHub bool) *streamServer {
	t.Helper()
	dir := t.TempDir()
	tok, _, err := CreateToken(dir, "read", "pbx")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Player: envOpts{}.testPlayer(t), DataDir: dir, Logger: testLogger(t), MaxStreamListeners: max}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if withHub {
		o.Streams = counterHub(ctx)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln := listenLoopback(t)
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &streamServer{s: s, base: "http://" + ln.Addr().String(), token: tok}
}

// counterHub is a hub publishing a counter every 20 ms until ctx ends:
// sample n of the signal is int16(n), so a reader can tell a gap.
func counterHub(ctx context.Context) *phone.Hub {
	hub := phone.NewHub()
	go phonetest.Publish(ctx, hub, phonetest.Counter)
	return hub
}

func (ss *streamServer) get(t *testing.T, format string, auth func(*http.Request)) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", ss.base+"/api/v1/stream/"+format, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (ss *streamServer) basic(r *http.Request) { r.SetBasicAuth("moh", ss.token) }

func TestStreamAuth(t *testing.T) {
	ss := newStreamServer(t, 0, true)
	resp := ss.get(t, "slin", nil)
	wantError(t, resp, readAll(t, resp), 401, "unauthenticated")
	if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="moh"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
	resp = ss.get(t, "slin", func(r *http.Request) { r.SetBasicAuth("moh", "moh_wrong") })
	wantError(t, resp, readAll(t, resp), 401, "invalid_token")
	if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="moh"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
	resp = ss.get(t, "nosuch", ss.basic)
	wantError(t, resp, readAll(t, resp), 404, "unknown_format")

	for _, tc := range []struct {
		format, ctype string
		auth          func(*http.Request)
	}{
		{"slin", "audio/x-slin", ss.basic},
		{"ulaw", "audio/basic", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+ss.token) }},
		{"alaw", "audio/x-alaw-basic", func(r *http.Request) { r.SetBasicAuth("", ss.token) }},
	} {
		resp := ss.get(t, tc.format, tc.auth)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.ctype {
			t.Fatalf("%s: %d %q", tc.format, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if len(resp.TransferEncoding) != 0 || resp.Header.Get("icy-name") == "" {
			t.Errorf("%s: transfer encoding %v, icy-name %q: want a plain body with icy-name", tc.format, resp.TransferEncoding, resp.Header.Get("icy-name"))
		}
		b := make([]byte, 1600)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			t.Fatalf("%s: %v", tc.format, err)
		}
		resp.Body.Close()
	}
}

func TestStreamNoSignal(t *testing.T) {
	ss := newStreamServer(t, 0, false)
	resp := ss.get(t, "ulaw", ss.basic)
	wantError(t, resp, readAll(t, resp), 503, "no_stream")
	if _, ok := ss.s.StreamStats(); ok {
		t.Error("stream stats reported by a box without streams")
	}
}

func TestStreamListenerCap(t *testing.T) {
	ss := newStreamServer(t, 2, true)
	a := ss.get(t, "ulaw", ss.basic)
	b := ss.get(t, "slin", ss.basic)
	if a.StatusCode != 200 || b.StatusCode != 200 {
		t.Fatalf("%d %d", a.StatusCode, b.StatusCode)
	}
	c := ss.get(t, "alaw", ss.basic)
	wantError(t, c, readAll(t, c), 503, "too_many_listeners")
	if c.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	a.Body.Close()
	waitStreams(t, ss.s, func(l map[string]int, _ map[string]uint64) bool { return l["ulaw"] == 0 && l["slin"] == 1 })
	if d := ss.get(t, "alaw", ss.basic); d.StatusCode != 200 {
		t.Fatalf("after one left: %d", d.StatusCode)
	}
}

// waitStreams waits up to 15 s for the stream counters to satisfy ok.
func waitStreams(t *testing.T, s *Server, ok func(listeners map[string]int, dropped map[string]uint64) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, _ := s.StreamStats()
		if ok(st.Listeners, st.Dropped) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("streams: listeners %v dropped %v", st.Listeners, st.Dropped)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A listener that stops reading is cut off and counted, while another
// keeps every sample. The stalled client's receive buffer is kept small
// (4 KiB): how much a silent peer's kernel absorbs before the writes
// block is the peer's business (Linux here took more than 60 s of
// ulaw on loopback); the server's part, which this measures, is the
// 2 s write deadline after that.
func TestStreamStalledReaderDropped(t *testing.T) {
	ss := newStreamServer(t, 0, true)
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	stalled, err := d.Dial("tcp", strings.TrimPrefix(ss.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprintf(stalled, "GET /api/v1/stream/slin HTTP/1.1\r\nHost: moh\r\nAuthorization: Bearer %s\r\n\r\n", ss.token)
	start := time.Now()

	good := ss.get(t, "slin", ss.basic)
	if good.StatusCode != 200 {
		t.Fatalf("good reader: %d", good.StatusCode)
	}
	type result struct {
		n, gaps int
		err     error
	}
	res := make(chan result, 1)
	go func() {
		var r result
		var prev int16
		buf := make([]byte, 320)
		for time.Since(start) < 8*time.Second {
			if _, err := io.ReadFull(good.Body, buf); err != nil {
				r.err = err
				break
			}
			for i := 0; i < len(buf); i += 2 {
				v := int16(binary.LittleEndian.Uint16(buf[i:]))
				if r.n > 0 && v != prev+1 {
					r.gaps++
				}
				prev = v
				r.n++
			}
		}
		res <- r
	}()
	waitStreams(t, ss.s, func(_ map[string]int, dr map[string]uint64) bool { return dr["slin"] == 1 })
	took := time.Since(start)
	r := <-res
	t.Logf("stalled reader dropped after %v; the other read %d samples with %d gaps", took.Round(10*time.Millisecond), r.n, r.gaps)
	if r.err != nil || r.gaps != 0 {
		t.Fatalf("good reader: err %v, %d gaps", r.err, r.gaps)
	}
	// 8 s at 8000 samples/s, less the start-up.
	if r.n < 7*8000 {
		t.Fatalf("good reader got %d samples in 8 s", r.n)
	}
	if took > 8*time.Second {
		t.Fatalf("stalled reader dropped only after %v", took)
	}
	waitStreams(t, ss.s, func(l map[string]int, _ map[string]uint64) bool { return l["slin"] == 1 })
}

// A healthy stream outlives the server's 30 s read and write timeouts
// (httpServer): the handler keeps its own per-write deadline.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 33 s")
	}
	ss := newStreamServer(t, 0, true)
	resp := ss.get(t, "ulaw", ss.basic)
	if resp.StatusCode != 200 {
		t.Fatalf("%d", resp.StatusCode)
	}
	start := time.Now()
	n, err := io.CopyN(io.Discard, resp.Body, 33*8000)
	t.Logf("read %d bytes in %v", n, time.Since(start).Round(10*time.Millisecond))
	if err != nil {
		t.Fatalf("stream ended after %v (%d bytes): %v", time.Since(start).Round(time.Millisecond), n, err)
	}
}

// The page's session listens too (its "Hear as callers will"), from its
// own origin only; Bearer and Basic still work beside it, and a session
// gets no further than a GET: the stream changes nothing.
func TestStreamSession(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hub := counterHub(ctx)
	e := newEnv(t, envOpts{password: testPW, opts: func(o *Options) { o.Streams = hub }})
	c, _ := e.login(testPW)
	get := func(method string, hdr map[string]string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, e.ts.URL+"/api/v1/stream/slin", nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for _, site := range []string{"", "same-origin", "none"} {
		resp := get("GET", map[string]string{"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "cors"})
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "audio/x-slin" {
			t.Fatalf("session, Sec-Fetch-Site %q: %d %q", site, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		b := make([]byte, 3200)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			t.Fatalf("session stream: %v", err)
		}
		// The counter runs on: the bytes are the signal, not a page.
		a, z := int16(binary.LittleEndian.Uint16(b)), int16(binary.LittleEndian.Uint16(b[len(b)-2:]))
		if z-a != int16(len(b)/2-1) {
			t.Fatalf("session stream: samples %d .. %d over %d bytes", a, z, len(b))
		}
		resp.Body.Close()
	}
	for _, site := range []string{"same-site", "cross-site"} {
		resp := get("GET", map[string]string{"Sec-Fetch-Site": site})
		if resp.StatusCode == http.StatusOK {
			// reading the body would wait for the stream's end
			t.Fatalf("session, Sec-Fetch-Site %q: streamed (200), want 403 cross_site", site)
		}
		wantError(t, resp, readAll(t, resp), http.StatusForbidden, "cross_site")
	}
	resp := get("POST", nil)
	wantError(t, resp, readAll(t, resp), http.StatusMethodNotAllowed, "method_not_allowed")
	// Without the session: 401 with the Basic challenge.
	req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/stream/slin", nil)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, r2, readAll(t, r2), http.StatusUnauthorized, "unauthenticated")
}

// The stall judge on window readings once a second: readers that read,
// even in bursts or with a steady backlog, are never judged stalled; a
// window that shrinks second after second is, after streamStallTimeout.
func TestStallWatchObserve(t *testing.T) {
	const max = 256 << 10
	run := func(window func(s int) uint32) (stalledAt int) {
		sw := &stallWatch{}
		for s := 0; s < 120; s++ {
			if sw.observe(window(s)) {
				return s
			}
		}
		return -1
	}
	healthy := map[string]func(int) uint32{
		"eager": func(int) uint32 { return max },
		"grows": func(s int) uint32 { return max + uint32(s/4)*1024 },
		// reads everything every 3 s, or every 9 s
		"reads every 3 s": func(s int) uint32 { return max - uint32(s%3)*16*1024 },
		"reads every 9 s": func(s int) uint32 { return max - uint32(s%9)*4*1024 },
		// 5 s behind from the start, then reading as fast as data comes:
		// the window shrinks for 5 s, then holds, wobbling by a step
		"steady backlog": func(s int) uint32 {
			if s < 5 {
				return max - uint32(s)*16*1024
			}
			return max - 5*16*1024 + uint32(s%2)*1024
		},
		"one step down": func(s int) uint32 { return max - min(uint32(s), 1)*8192 },
		// a peer kernel that absorbs, its window losing 1 KiB every 3 s:
		// not judged here (the write deadline cuts it once it is full)
		"slow shrink": func(s int) uint32 { return max - uint32(s/3)*1024 },
	}
	for name, f := range healthy {
		if at := run(f); at >= 0 {
			t.Errorf("%s: judged stalled at %d s", name, at)
		}
	}
	// A peer that stopped reading at 20 s: 16 kB/s (slin) pile up.
	at := run(func(s int) uint32 {
		if s <= 20 {
			return max
		}
		return max - uint32(min(s-20, 4))*16*1024
	})
	if at != -1 {
		t.Errorf("a window shrinking for only 4 s judged stalled at %d s", at)
	}
	at = run(func(s int) uint32 {
		if s <= 20 {
			return max
		}
		return max - uint32(s-20)*1024
	})
	if at != 30 {
		t.Errorf("stalled at 20 s: judged at %d s, want 30 (+%v)", at, streamStallTimeout)
	}
}

// A PBX that stops reading while its kernel keeps accepting (a receive
// buffer of 2 MiB: the writes would block only after 106 s) is cut off
// once its advertised window has shrunk for streamStallTimeout, while an
// Asterisk-style reader (curl into a pipe read at real time, 320 bytes
// every 20 ms), an eager reader and one reading 5 s late keep every frame
// and the line-out plays on undisturbed. Real box wiring: player,
// line-out tee, converter, hub.
func TestStreamStalledReaderWindow(t *testing.T) {
	box := phoneBox(t, 441)
	addr := strings.TrimPrefix(box.base, "http://")
	url := box.base + "/api/v1/stream/slin"

	// Asterisk's mode=custom: curl -s -u moh:TOKEN URL, read from the
	// pipe one 20 ms frame at a time on Asterisk's own clock.
	curl := exec.Command("curl", "-s", "-N", "-u", "moh:"+box.token, url)
	out, err := curl.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := curl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { curl.Process.Kill(); curl.Wait() })
	stop := make(chan struct{})
	realtime := readRealTime(out, 0, stop)
	eagerResp, err := http.Get(strings.Replace(url, "http://", "http://moh:"+box.token+"@", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer eagerResp.Body.Close()
	eager := make(chan reading, 1)
	go func() {
		n, err := io.Copy(io.Discard, eagerResp.Body)
		eager <- reading{bytes: n, err: err}
	}()
	// A reader 5 s behind: it reads at real time but only starts after
	// 5 s, so its kernel holds a steady 5 s backlog (its window stays
	// below its largest); it reads, so it must not be judged stalled.
	lagging, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer lagging.Close()
	fmt.Fprintf(lagging, "GET /api/v1/stream/slin HTTP/1.1\r\nHost: moh\r\nAuthorization: Bearer %s\r\n\r\n", box.token)
	lagged := readRealTime(lagging, 5*time.Second, stop)
	waitStreams(t, box.s, func(l map[string]int, _ map[string]uint64) bool { return l["slin"] == 3 })

	// The stalled PBX asks for the stream and reads nothing. Its receive
	// buffer is fixed at 1 MiB (the kernel makes it 2 MiB): over a minute
	// of slin before the box's writes would block (106 s measured).
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1<<20) })
		return serr
	}}
	stalled, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprintf(stalled, "GET /api/v1/stream/slin HTTP/1.1\r\nHost: moh\r\nAuthorization: Bearer %s\r\n\r\n", box.token)
	start := time.Now()
	line0 := box.lineBytes.Load()
	conv0 := box.conv.Stats()
	waitStreams(t, box.s, func(l map[string]int, _ map[string]uint64) bool { return l["slin"] == 4 })
	var took time.Duration
	for {
		st, _ := box.s.StreamStats()
		if st.Dropped["slin"] > 0 {
			took = time.Since(start)
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("the stalled reader is still served after %v (listeners %v)", time.Since(start).Round(time.Second), st.Listeners)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A few seconds more for the others, then look at what they got.
	time.Sleep(3 * time.Second)
	elapsed := time.Since(start)
	st, _ := box.s.StreamStats()
	close(stop)
	rt := <-realtime
	lg := <-lagged
	line := box.lineBytes.Load() - line0
	conv := box.conv.Stats()
	t.Logf("stalled reader cut off after %v; the real-time curl reader read %d B, the 5 s late one %d B, the line-out played %.2f s of PCM in %.2f s",
		took.Round(100*time.Millisecond), rt.bytes, lg.bytes, float64(line)/(4*44100), elapsed.Seconds())
	if took > streamStallTimeout+5*time.Second {
		t.Errorf("stalled reader cut off only after %v", took)
	}
	if st.Dropped["slin"] != 1 || st.Listeners["slin"] != 3 {
		t.Fatalf("after the cut: listeners %v dropped %v, want 3 listening, 1 dropped", st.Listeners, st.Dropped)
	}
	if lagStart := time.Since(start) - 5*time.Second; lg.err != nil || float64(lg.bytes) < 16000*(elapsed.Seconds()-6) {
		t.Fatalf("lagging reader: %d bytes in %v, err %v", lg.bytes, lagStart, lg.err)
	}
	// The real-time reader read all along (a lost frame would have ended
	// its stream) and heard the music, not silence.
	if rt.err != nil || float64(rt.bytes) < 16000*(elapsed.Seconds()-1) {
		t.Fatalf("real-time reader: %d bytes in %v, err %v", rt.bytes, elapsed, rt.err)
	}
	if lvl := phone.RMSToDBm0(math.Sqrt(rt.sumSq / float64(rt.bytes/2))); lvl < -21 || lvl > -17 {
		t.Errorf("real-time reader heard %.1f dBm0, want the music at -19", lvl)
	}
	eagerResp.Body.Close()
	if e := <-eager; float64(e.bytes) < 16000*(elapsed.Seconds()-1) {
		t.Fatalf("eager reader: %d bytes in %v (%v)", e.bytes, elapsed, e.err)
	}
	// The line-out played in real time throughout; the telephone signal
	// dropped, repeated and lost nothing.
	if got := float64(line) / (4 * 44100); got < elapsed.Seconds()-1 || got > elapsed.Seconds()+1 {
		t.Errorf("line-out played %.2f s of PCM in %.2f s", got, elapsed.Seconds())
	}
	// (A repeated frame is the pacer finding the line-out's PCM late, a
	// matter of CPU load on a shared test machine, not of the streams:
	// logged, not judged.)
	t.Logf("telephone signal: drops %d→%d, repeats %d→%d, overflow %d→%d", conv0.Drops, conv.Drops, conv0.Repeats, conv.Repeats, conv0.Overflow, conv.Overflow)
	if conv.Drops != conv0.Drops || conv.Overflow != conv0.Overflow {
		t.Errorf("telephone signal lost frames: drops %d→%d, overflow %d→%d", conv0.Drops, conv.Drops, conv0.Overflow, conv.Overflow)
	}
}

// reading is what a real-time stream reader got before it was stopped.
type reading struct {
	bytes int64
	sumSq float64 // of the slin samples, for the level
	err   error
}

// readRealTime reads r as a PBX does, one 20 ms frame of slin at a time
// on its own clock, starting after delay; the result arrives when stop is
// closed or a read fails.
func readRealTime(r io.Reader, delay time.Duration, stop <-chan struct{}) <-chan reading {
	done := make(chan reading, 1)
	go func() {
		var rd reading
		buf := make([]byte, 320)
		time.Sleep(delay)
		t0 := time.Now()
		for n := 1; ; n++ {
			select {
			case <-stop:
				done <- rd
				return
			case <-time.After(time.Until(t0.Add(time.Duration(n) * phone.FrameDuration))):
			}
			if _, err := io.ReadFull(r, buf); err != nil {
				rd.err = err
				done <- rd
				return
			}
			rd.bytes += int64(len(buf))
			for i := 0; i < len(buf); i += 2 {
				v := float64(int16(binary.LittleEndian.Uint16(buf[i:])))
				rd.sumSq += v * v
			}
		}
	}()
	return done
}
