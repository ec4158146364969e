package webui

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// served is a Server running on a real loopback listener through Serve,
// as mohd runs it, so the connection limiter is part of the test.
type served struct {
	srv   *Server
	dir   string
	addr  string
	admin string
}

func serve(t *testing.T, mod func(*Options), tweak func(*Server)) *served {
	t.Helper()
	dir := t.TempDir()
	if err := SetPassword(dir, testPW); err != nil {
		t.Fatal(err)
	}
	o := Options{Player: envOpts{}.testPlayer(t), DataDir: dir, Logger: testLogger(t)}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(s)
	}
	admin, _, err := CreateToken(dir, "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	ln := serveLoopback(t, s)
	return &served{srv: s, dir: dir, addr: ln.Addr().String(), admin: admin}
}

// rawConn is one client connection driven by hand.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialFrom(t *testing.T, addr, src string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// get sends one keep-alive GET and reads the answer.
func (c *rawConn) get(path, token string) (*http.Response, error) {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	defer c.SetDeadline(time.Time{})
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: moh\r\n%s\r\n", path, auth); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// closedBy reports whether the server has closed c, waiting up to d.
func (c *rawConn) closedBy(d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	_, err := c.br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// quickGet is a monitoring probe: a new connection, one second at most.
func quickGet(addr, src, path, token string) (*http.Response, time.Duration, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	cl := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := cl.Do(req)
	if err != nil {
		return nil, time.Since(start), err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, time.Since(start), nil
}

// TestConnCapEvictsIdleUnauthenticated: at the global cap, a newcomer is
// served at once, and the connection closed to make room for it is the one
// that has idled longest without authenticating.
func TestConnCapEvictsIdleUnauthenticated(t *testing.T) {
	s := serve(t, func(o *Options) { o.MaxConns = 4 }, nil)
	var held []*rawConn
	for i := range 4 {
		c := dialFrom(t, s.addr, fmt.Sprintf("127.0.0.%d", 10+i))
		held = append(held, c)
		if i == 0 {
			if _, err := c.get("/healthz", ""); err != nil { // idle keep-alive, not silent
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond) // a distinct idle-since for each
	}
	resp, took, err := quickGet(s.addr, "127.0.0.1", "/healthz", "")
	if err != nil {
		t.Fatalf("newcomer at the cap not served: %v after %v", err, took)
	}
	t.Logf("newcomer at the cap: %d after %v", resp.StatusCode, took)
	if !held[0].closedBy(time.Second) {
		t.Fatal("the oldest idle unauthenticated connection was not closed")
	}
	for i, c := range held[1:] {
		if c.closedBy(50 * time.Millisecond) {
			t.Fatalf("connection %d closed, only the oldest should be", i+1)
		}
	}
}

// TestConnCapKeepsAuthenticated: connections that authenticated are never
// evicted; with all places held by them a newcomer waits for one to close.
func TestConnCapKeepsAuthenticated(t *testing.T) {
	s := serve(t, func(o *Options) { o.MaxConns = 2 }, nil)
	var held []*rawConn
	for range 2 {
		c := dialFrom(t, s.addr, "127.0.0.1")
		if resp, err := c.get("/api/v1/status", s.admin); err != nil || resp.StatusCode != 200 {
			t.Fatalf("status: %v %v", resp, err)
		}
		held = append(held, c)
	}
	if _, took, err := quickGet(s.addr, "127.0.0.1", "/healthz", ""); err == nil {
		t.Fatalf("served beyond the cap after %v: an admin's connection was closed for it", took)
	}
	for _, c := range held {
		if c.closedBy(20 * time.Millisecond) {
			t.Fatal("an authenticated connection was evicted")
		}
	}
	held[0].Close()
	if resp, _, err := quickGet(s.addr, "127.0.0.1", "/healthz", ""); err != nil {
		t.Fatalf("after a place freed: %v", err)
	} else if resp.StatusCode != 200 {
		t.Fatalf("after a place freed: %d", resp.StatusCode)
	}
}

// TestConnCapPerAddress: one address cannot hold more than its share.
func TestConnCapPerAddress(t *testing.T) {
	s := serve(t, func(o *Options) { o.MaxConnsPerAddr = 2 }, nil)
	for range 2 {
		c := dialFrom(t, s.addr, "127.0.0.2")
		if resp, err := c.get("/api/v1/status", s.admin); err != nil || resp.StatusCode != 200 {
			t.Fatalf("status: %v %v", resp, err)
		}
	}
	// Both places of 127.0.0.2 are an admin's: a third is closed at once.
	third := dialFrom(t, s.addr, "127.0.0.2")
	if !third.closedBy(time.Second) {
		t.Fatal("third connection from one address was not closed")
	}
	// Other addresses are not affected.
	if resp, _, err := quickGet(s.addr, "127.0.0.3", "/healthz", ""); err != nil || resp.StatusCode != 200 {
		t.Fatalf("another address: %v %v", resp, err)
	}
	// An address whose places are held by unauthenticated connections
	// idle after their answer gets its newest one in, in place of the one
	// idle longest.
	a := dialFrom(t, s.addr, "127.0.0.4")
	b := dialFrom(t, s.addr, "127.0.0.4")
	for _, c := range []*rawConn{a, b} {
		if _, err := c.get("/healthz", ""); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, _, err := quickGet(s.addr, "127.0.0.4", "/healthz", ""); err != nil || resp.StatusCode != 200 {
		t.Fatalf("newcomer from a full address: %v %v", resp, err)
	}
	if !a.closedBy(time.Second) || b.closedBy(50*time.Millisecond) {
		t.Fatal("want the longest idle connection of the address closed, and only it")
	}
	// New connections that have not sent their first request are not
	// pushed out by the same address's next one: that one is refused.
	c1 := dialFrom(t, s.addr, "127.0.0.5")
	c2 := dialFrom(t, s.addr, "127.0.0.5")
	time.Sleep(50 * time.Millisecond) // both accepted
	if !dialFrom(t, s.addr, "127.0.0.5").closedBy(time.Second) {
		t.Fatal("third new connection from one address not refused")
	}
	for _, c := range []*rawConn{c1, c2} {
		if resp, err := c.get("/healthz", ""); err != nil || resp.StatusCode != 200 {
			t.Fatalf("a waiting connection was pushed out: %v %v", resp, err)
		}
	}
}

// TestUnauthenticatedTimeouts: an idle connection that never
// authenticated is closed after the short timeout; one that did keeps the
// normal idle timeout, and its first request keeps the normal read
// timeout for its body.
func TestUnauthenticatedTimeouts(t *testing.T) {
	s := serve(t, nil, func(s *Server) { s.unauthTimeout = 300 * time.Millisecond })
	anon := dialFrom(t, s.addr, "127.0.0.1")
	if _, err := anon.get("/healthz", ""); err != nil {
		t.Fatal(err)
	}
	admin := dialFrom(t, s.addr, "127.0.0.1")
	if resp, err := admin.get("/api/v1/status", s.admin); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status: %v %v", resp, err)
	}
	start := time.Now()
	if !anon.closedBy(2 * time.Second) {
		t.Fatal("idle unauthenticated connection still open after 2 s")
	}
	t.Logf("idle unauthenticated connection closed after %v", time.Since(start).Round(10*time.Millisecond))
	if admin.closedBy(time.Second) {
		t.Fatal("idle authenticated connection closed early")
	}
	// A silent connection is let go as fast.
	silent := dialFrom(t, s.addr, "127.0.0.1")
	if !silent.closedBy(2 * time.Second) {
		t.Fatal("silent connection still open after 2 s")
	}

	// First request on a new connection, token-authenticated, its body
	// arriving after longer than the unauthenticated timeout.
	c := dialFrom(t, s.addr, "127.0.0.1")
	body := `{"volume":12}`
	fmt.Fprintf(c, "PUT /api/v1/volume HTTP/1.1\r\nHost: moh\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		s.admin, len(body), body[:5])
	time.Sleep(700 * time.Millisecond)
	io.WriteString(c, body[5:])
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("authenticated request's slow body cut off: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("volume: %d %s", resp.StatusCode, b)
	}
	// The same over an unauthenticated request is cut off.
	c = dialFrom(t, s.addr, "127.0.0.1")
	form := "password=x"
	fmt.Fprintf(c, "POST /login HTTP/1.1\r\nHost: moh\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(form)+50, form)
	// The server gives up on the body: it answers or hangs up, well
	// before the 30 s read timeout an authenticated request gets.
	start = time.Now()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.br.ReadByte(); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("unauthenticated request with a stalled body not cut off within 3 s")
		}
	}
	t.Logf("unauthenticated request with a stalled body cut off after %v", time.Since(start).Round(10*time.Millisecond))
}

func TestAddrKey(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"192.0.2.7:1234", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1234", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:80", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:80", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:80", "2001:db8:1:3::/64"},
	} {
		a, err := net.ResolveTCPAddr("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := addrKey(a); got != c.want {
			t.Errorf("addrKey(%s) = %s, want %s", c.addr, got, c.want)
		}
	}
	if got := addrKey(&net.UnixAddr{Name: "@moh", Net: "unix"}); !strings.Contains(got, "moh") {
		t.Errorf("unix addr key %q", got)
	}
}
