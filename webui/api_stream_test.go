package webui

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/phone"
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
		hub := phone.NewHub()
		o.Streams = hub
		go func() {
			tk := time.NewTicker(phone.FrameDuration)
			defer tk.Stop()
			var n int
			for {
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
				}
				f := new(phone.Frame)
				for i := range f.PCM {
					f.PCM[i] = int16(n)
					n++
				}
				hub.Publish(f)
			}
		}()
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
