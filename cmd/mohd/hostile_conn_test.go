package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// The connection-flood tests are hostile clients on loopback only, bounded
// in count (a few hundred sockets per flood) and in time (seconds). They
// run the real mohd binary, because what they test is the listener, the
// HTTP server's timeouts and the daemon's file descriptors together.

// idleConn opens a connection from src, makes one unauthenticated request
// on it and leaves it open and idle, as a keep-alive client would. It
// returns nil if the server refused or never answered.
func idleConn(target string, src net.IP) net.Conn {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", target)
	if err != nil {
		return nil
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: moh\r\n\r\n"); err != nil {
		c.Close()
		return nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetDeadline(time.Time{})
	return c
}

// flooder keeps up to perSrc idle connections open from each source
// address, reopening those the server closes, 64 dials at a time.
type flooder struct {
	target string
	srcs   []net.IP
	perSrc int

	mu     sync.Mutex
	live   map[string]int // per source address
	conns  map[net.Conn]struct{}
	opened atomic.Int64
	stop   chan struct{}
	filler sync.WaitGroup // keepUp, whose fill waits for its own dials
	done   sync.WaitGroup // one reader per open connection
}

func newFlooder(target string, srcs []net.IP, perSrc int) *flooder {
	return &flooder{target: target, srcs: srcs, perSrc: perSrc, stop: make(chan struct{}),
		live: map[string]int{}, conns: map[net.Conn]struct{}{}}
}

// fill tops every source address up to perSrc open connections, opening
// at most budget. Each connection has a reader that notices when the
// server closes it.
func (f *flooder) fill(budget int) {
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, src := range f.srcs {
		f.mu.Lock()
		missing := min(f.perSrc-f.live[src.String()], budget)
		f.mu.Unlock()
		budget -= missing
		for range missing {
			select {
			case <-f.stop:
				wg.Wait()
				return
			case sem <- struct{}{}:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c := idleConn(f.target, src)
				if c == nil {
					return
				}
				f.opened.Add(1)
				f.mu.Lock()
				f.live[src.String()]++
				f.conns[c] = struct{}{}
				f.mu.Unlock()
				f.done.Add(1)
				go func() {
					defer f.done.Done()
					io.Copy(io.Discard, c) // returns when either side closes
					c.Close()
					f.mu.Lock()
					f.live[src.String()]--
					delete(f.conns, c)
					f.mu.Unlock()
				}()
			}()
		}
	}
	wg.Wait()
}

// keepUp refills the flood every 250 ms until close, at most 64
// connections each time (256 a second).
func (f *flooder) keepUp() {
	f.filler.Add(1)
	go func() {
		defer f.filler.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-tick.C:
			}
			f.fill(64)
		}
	}()
}

// open is how many flood connections the server holds open now.
func (f *flooder) open() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

func (f *flooder) close() {
	close(f.stop)
	f.filler.Wait()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.done.Wait()
}

// clientFrom is an HTTP client that dials from src on a new connection for
// every request: a monitoring probe or an admin arriving during the flood.
func clientFrom(src string, jar http.CookieJar) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Second}
	return &http.Client{
		Timeout:       time.Second,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
	}
}

var loginCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// loginSession logs in through the real form and returns the cookie jar.
func loginSession(t *testing.T, base, pw string) http.CookieJar {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := clientFrom("127.0.0.1", jar)
	c.Timeout = 10 * time.Second
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := loginCSRF.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no form token on the login page: %s", page)
	}
	resp, err = c.PostForm(base+"/login", url.Values{"password": {pw}, "csrf": {string(m[1])}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	return jar
}

// probe is one request that must be answered during the flood.
type probe struct {
	name, src, path, token string
	jar                    http.CookieJar
	// retry: the probe shares the flooding address, whose 32 places the
	// flood fights for, so a connection of its may be refused; it may
	// reconnect, as a browser would, within the same 1 s.
	retry bool
}

func (p probe) run(base string) (time.Duration, error) {
	start := time.Now()
	for {
		err := p.once(base)
		if err == nil || !p.retry || time.Since(start) >= time.Second {
			return time.Since(start), err
		}
	}
}

func (p probe) once(base string) error {
	req, _ := http.NewRequest("GET", base+p.path, nil)
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := clientFrom(p.src, p.jar).Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

func srcRange(from, n int) []net.IP {
	var out []net.IP
	for i := range n {
		out = append(out, net.IPv4(127, 0, 0, byte(from+i)))
	}
	return out
}

// TestConnectionFlood holds more idle keep-alive connections than mohd's
// connection cap — from many loopback addresses, then from one — and keeps
// reopening those mohd closes. Meanwhile /healthz, an admin token, an admin
// session and `mohd check` must each be answered within 1 s, every time.
func TestConnectionFlood(t *testing.T) {
	data := t.TempDir()
	const pw = "flood test password"
	if _, err := mohdCmd(t, pw+"\n", "passwd", "--data", data); err != nil {
		t.Fatal(err)
	}
	token := createToken(t, data, "admin")
	addr := testkit.FreeAddr(t)
	d := startDaemon(t, data, addr)
	base := "http://" + addr
	api := &apiClient{base: base, token: token, hc: &http.Client{Timeout: 5 * time.Second}}
	waitFlowing(t, api, d, time.Now())
	waitHealthy(t, base)
	jar := loginSession(t, base, pw)

	floods := []struct {
		name   string
		srcs   []net.IP
		perSrc int
		// the flooding address itself also asks for /healthz
		victim string
	}{
		{name: "20 addresses", srcs: srcRange(10, 20), perSrc: 32, victim: "127.0.0.10"},
		{name: "one address", srcs: srcRange(50, 1), perSrc: 600, victim: "127.0.0.50"},
	}
	for _, fl := range floods {
		t.Run(fl.name, func(t *testing.T) {
			f := newFlooder(addr, fl.srcs, fl.perSrc)
			defer f.close()
			start := time.Now()
			f.fill(1 << 30)
			t.Logf("flood: %d connections opened and left idle in %v, %d still open", f.opened.Load(), time.Since(start).Round(time.Millisecond), f.open())
			f.keepUp()
			probes := []probe{
				{name: "healthz", src: "127.0.0.1", path: "/healthz"},
				{name: "healthz from the flooding address", src: fl.victim, path: "/healthz", retry: true},
				{name: "admin token", src: "127.0.0.1", path: "/api/v1/status", token: token},
				{name: "admin session", src: "127.0.0.1", path: "/api/v1/status", jar: jar},
				{name: "admin page", src: "127.0.0.1", path: "/", jar: jar},
			}
			worst := map[string]time.Duration{}
			for round := range 6 {
				for _, p := range probes {
					took, err := p.run(base)
					worst[p.name] = max(worst[p.name], took)
					if err != nil || took > time.Second {
						t.Errorf("round %d, %s: %v after %v (want an answer within 1 s)", round, p.name, err, took.Round(time.Millisecond))
					}
				}
				time.Sleep(500 * time.Millisecond)
			}
			names := make([]string, 0, len(worst))
			for n := range worst {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				t.Logf("slowest %-35s %v", n+":", worst[n].Round(time.Millisecond))
			}
			cstart := time.Now()
			cmd := exec.Command(mohdBin, "check", "--data", data, "--listen", addr, "--timeout", "1s")
			out, _ := cmd.Output()
			if code := cmd.ProcessState.ExitCode(); code != 0 || !strings.HasPrefix(string(out), "MOH OK") {
				t.Errorf("mohd check during the flood: exit %d, %q", code, out)
			}
			t.Logf("mohd check during the flood: %v, %s", time.Since(cstart).Round(time.Millisecond), strings.TrimSpace(string(out)))
			t.Logf("flood: %d connections opened in all, %d open now", f.opened.Load(), f.open())
			if fl.perSrc > 32 {
				if n := f.open(); n > 32 {
					t.Errorf("%d connections open from one address, want at most 32", n)
				}
			}
		})
	}

	// An unauthenticated idle connection is let go within seconds, not
	// after the 120 s an admin's keep-alive connection gets.
	t.Run("unauthenticated idle timeout", func(t *testing.T) {
		c := idleConn(addr, net.IPv4(127, 0, 0, 99))
		if c == nil {
			t.Fatal("no connection")
		}
		defer c.Close()
		start := time.Now()
		c.SetReadDeadline(start.Add(15 * time.Second))
		io.Copy(io.Discard, c)
		held := time.Since(start)
		t.Logf("idle unauthenticated connection closed by mohd after %v", held.Round(100*time.Millisecond))
		if held > 10*time.Second {
			t.Errorf("idle unauthenticated connection still open after %v", held.Round(time.Second))
		}
	})
	s, err := api.status()
	if err != nil || s.State != "playing" {
		t.Fatalf("after the floods: %+v %v\n%s", s, err, d.Log)
	}
	if d.Exited() {
		t.Fatalf("mohd exited:\n%s", d.Log)
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.Cmd.Process.Pid)); err == nil {
		t.Logf("mohd holds %d file descriptors after the floods", len(fds))
	}
}
