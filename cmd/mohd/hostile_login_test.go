package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

const hostilePW = "correct horse battery"

// loginFlood tallies the answers a burst of wrong logins got.
type loginFlood struct {
	checked, throttled, busy, other, connErr atomic.Int64
	firstErr                                 atomic.Value
}

func (f *loginFlood) String() string {
	s := fmt.Sprintf("%d checked (401), %d throttled (429), %d hash gate busy (429), %d other, %d connection errors",
		f.checked.Load(), f.throttled.Load(), f.busy.Load(), f.other.Load(), f.connErr.Load())
	if e, ok := f.firstErr.Load().(string); ok {
		s += " (first: " + e + ")"
	}
	return s
}

// loginClientFrom is an HTTP client whose connections leave from the loopback
// address src: all of 127.0.0.0/8 is loopback on Linux, so one test can
// play many hostile hosts without a packet leaving the machine.
func loginClientFrom(src string, conns int) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: conns,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// postLoginFrom posts the login form as a browser would: the form token
// from GET /login in both the cookie and the field. It returns the status
// and the page text.
func postLoginFrom(hc *http.Client, base, pw string) (int, string, error) {
	// The double-submit check only compares field and cookie; a client
	// may pick its own value, as an attacker's script would.
	const tok = "hostile-client-form-token-0123456789abcdef"
	f := url.Values{"password": {pw}, "csrf": {tok}}
	req, err := http.NewRequest("POST", base+"/login", strings.NewReader(f.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "moh_form", Value: tok})
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), nil
}

func (f *loginFlood) count(code int, body string, err error) {
	switch {
	case err != nil:
		f.connErr.Add(1)
		f.firstErr.CompareAndSwap(nil, err.Error())
	case code == http.StatusUnauthorized:
		f.checked.Add(1)
	case code == http.StatusTooManyRequests && strings.Contains(body, "busy"):
		f.busy.Add(1)
	case code == http.StatusTooManyRequests:
		f.throttled.Add(1)
	default:
		f.other.Add(1)
	}
}

// hlFlood runs workers per source address, each posting wrong passwords
// back to back until it has sent perWorker or ctx ends.
func hlFlood(ctx context.Context, base string, srcs []string, workers, perWorker int) *loginFlood {
	f := &loginFlood{}
	var wg sync.WaitGroup
	var clients []*http.Client
	for _, src := range srcs {
		hc := loginClientFrom(src, workers)
		clients = append(clients, hc)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perWorker && ctx.Err() == nil; i++ {
					code, body, err := postLoginFrom(hc, base, fmt.Sprintf("wrong guess %d", i))
					f.count(code, body, err)
				}
			}()
		}
	}
	wg.Wait()
	// The attacker goes away: its idle keep-alive connections would
	// otherwise hold the server's connection slots, which is another
	// attack (connection exhaustion) with its own test.
	for _, hc := range clients {
		hc.CloseIdleConnections()
	}
	return f
}

// hlPeakRSS is the process's high-water resident set (VmHWM), in bytes.
func hlPeakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	fh, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// hlAudioWatch checks, every 250 ms until stopped, that /healthz answers
// 200 and that /api/v1/status answers a token (the token request that
// must keep working during the flood), and records the audio frames it
// reports.
type hlAudioWatch struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	faults  []string
	samples []hlFrameSample
	slowest time.Duration
}

type hlFrameSample struct {
	at     time.Time
	frames uint64
}

func hlWatchAudio(c *apiClient, base string) *hlAudioWatch {
	a := &hlAudioWatch{stop: make(chan struct{}), done: make(chan struct{})}
	hc := loginClientFrom("127.0.0.1", 2)
	hc.Timeout = 5 * time.Second
	c = &apiClient{base: c.base, token: c.token, hc: hc}
	go func() {
		defer close(a.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-a.stop:
				return
			case <-tick.C:
			}
			t0 := time.Now()
			fault := ""
			if resp, err := hc.Get(base + "/healthz"); err != nil {
				fault = "healthz: " + err.Error()
			} else {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fault = fmt.Sprintf("healthz: HTTP %d", resp.StatusCode)
				}
			}
			s, err := c.status()
			if err != nil {
				fault += " status with token: " + err.Error()
			}
			a.mu.Lock()
			if err == nil {
				a.samples = append(a.samples, hlFrameSample{time.Now(), s.Frames})
			}
			a.slowest = max(a.slowest, time.Since(t0))
			if fault != "" {
				a.faults = append(a.faults, t0.Format("15:04:05.000")+" "+fault)
			}
			a.mu.Unlock()
		}
	}()
	return a
}

// finish stops the watch and judges the audio: the frame count must
// advance across every 750 ms (the output is paced in real time, so a
// stall shows as a flat count; the pacer's small lead makes shorter flat
// spells normal) and keep up with the wall clock overall.
func (a *hlAudioWatch) finish() ([]string, int, time.Duration) {
	close(a.stop)
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	faults := a.faults
	ss := a.samples
	j := 0
	for i := range ss {
		for j+1 < i && ss[i].at.Sub(ss[j+1].at) >= 750*time.Millisecond {
			j++
		}
		if ss[i].at.Sub(ss[j].at) >= 750*time.Millisecond && ss[i].frames <= ss[j].frames {
			faults = append(faults, fmt.Sprintf("%s frames stuck at %d since %s",
				ss[i].at.Format("15:04:05.000"), ss[i].frames, ss[j].at.Format("15:04:05.000")))
		}
	}
	if n := len(ss); n >= 2 {
		played := float64(ss[n-1].frames-ss[0].frames) / 44100
		wall := ss[n-1].at.Sub(ss[0].at).Seconds()
		if played < 0.8*wall {
			faults = append(faults, fmt.Sprintf("%.2f s of audio played in %.2f s", played, wall))
		}
	}
	return faults, len(ss), a.slowest
}

// TestHostileLoginFlood floods the real mohd's login form from one address
// and from many, and checks that the flood buys no more guesses than the
// throttle allows, cannot run mohd out of memory, never interrupts the
// audio, and never locks out the admin (correct password from a clean
// address, and an API token) while it goes on.
func TestHostileLoginFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a real mohd")
	}
	data := t.TempDir()
	if _, err := mohdCmd(t, hostilePW+"\n", "passwd", "--data", data); err != nil {
		t.Fatal(err)
	}
	tok := createToken(t, data, "read")
	addr := testkit.FreeAddr(t)
	base := "http://" + addr
	d := startDaemon(t, data, addr)
	c := &apiClient{base: base, token: tok, hc: &http.Client{Timeout: 5 * time.Second}}
	waitFlowing(t, c, d, time.Now())
	waitHealthy(t, base)
	time.Sleep(time.Second) // past the output's start-up lead
	watch := hlWatchAudio(c, base)
	start := time.Now()

	// One address, 300 at once.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	one := hlFlood(ctx, base, []string{"127.0.0.2"}, 300, 1)
	t.Logf("one address, 300 concurrent: %v", one)

	// Many addresses (40 × 8 workers), going on while the admin logs in.
	var srcs []string
	for i := 1; i <= 40; i++ {
		srcs = append(srcs, fmt.Sprintf("127.0.1.%d", i))
	}
	manyc := make(chan *loginFlood, 1)
	floodStart := time.Now()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel2()
	go func() { manyc <- hlFlood(ctx2, base, srcs, 8, 10) }()
	time.Sleep(300 * time.Millisecond)

	// The admin, from an address that never guessed wrong, with the right
	// password. A busy hash gate says "try again in a second", which a
	// person does; being throttled is a lockout and fails the test.
	admin := loginClientFrom("127.0.0.250", 1)
	var adminCode int
	var adminBody string
	adminTries := 0
	adminStart := time.Now()
	for time.Since(adminStart) < 10*time.Second {
		adminTries++
		code, body, err := postLoginFrom(admin, base, hostilePW)
		if err != nil {
			body = err.Error()
		}
		adminCode, adminBody = code, body
		if code != http.StatusTooManyRequests || !strings.Contains(body, "busy") {
			break
		}
		time.Sleep(time.Second)
	}
	adminTook := time.Since(adminStart)
	many := <-manyc
	floodSecs := time.Since(floodStart).Seconds()
	t.Logf("40 addresses × 8 concurrent × 10: %v", many)
	t.Logf("admin login from a clean address: HTTP %d after %d tries, %v", adminCode, adminTries, adminTook.Round(time.Millisecond))

	// Audio and the token kept working for a while after the flood too.
	time.Sleep(time.Second)
	faults, samples, slowest := watch.finish()
	rss := hlPeakRSS(t, d.Cmd.Process.Pid)
	t.Logf("peak RSS (VmHWM) %.1f MB; audio/token checks: %d, %d faults, slowest %v; whole test %v",
		float64(rss)/1e6, samples, len(faults), slowest.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	if d.Exited() {
		t.Fatalf("mohd died under the flood:\n%s", d.Log)
	}
	if n := one.checked.Load(); n > 5 {
		t.Errorf("one address: %d guesses checked, limit 5", n)
	}
	// Each clean address's first guess plus the global budget (50, then
	// one per 2 s); the per-address limit of 5 also holds.
	if n, limit := many.checked.Load(), int64(len(srcs))+50+int64(floodSecs/2)+1; n > limit || n > int64(5*len(srcs)) {
		t.Errorf("many addresses: %d guesses checked, limit %d", n, min(limit, int64(5*len(srcs))))
	}
	if one.other.Load()+many.other.Load() > 0 {
		t.Errorf("answers other than 401/429 to wrong logins: %d, %d", one.other.Load(), many.other.Load())
	}
	if rss >= 100e6 {
		t.Errorf("peak RSS %.1f MB, want < 100 MB", float64(rss)/1e6)
	}
	if adminCode != http.StatusSeeOther {
		t.Errorf("admin's correct password from a clean address: HTTP %d: %.300s", adminCode, adminBody)
	}
	if len(faults) > 0 || samples < 4 {
		t.Errorf("audio or token interrupted (%d checks): %q", samples, faults)
	}

	// An address that used up its guesses stays throttled across a
	// restart (kill -9, as an out-of-memory kill would do)...
	src := loginClientFrom("127.0.0.3", 1)
	for i := 0; ; i++ {
		code, body, err := postLoginFrom(src, base, "wrong again")
		if err != nil || i > 100 {
			t.Fatalf("exhausting one address: %d %v after %d tries", code, err, i)
		}
		if code == http.StatusTooManyRequests && !strings.Contains(body, "busy") {
			break
		}
		if code == http.StatusTooManyRequests {
			time.Sleep(100 * time.Millisecond)
		}
	}
	d.Kill()
	src.CloseIdleConnections()
	startDaemon(t, data, addr)
	waitHealthy(t, base)
	code, body, err := postLoginFrom(src, base, "wrong after restart")
	if err != nil || code != http.StatusTooManyRequests || strings.Contains(body, "busy") {
		t.Errorf("throttled address after a restart: HTTP %d %v", code, err)
	}
	if !strings.Contains(body, "mohd passwd") {
		t.Errorf("throttled page does not name the console reset: %.300s", body)
	}
	// ...until the admin sets a new password on the console.
	if _, err := mohdCmd(t, "a new admin password\n", "passwd", "--data", data); err != nil {
		t.Fatal(err)
	}
	code, body, err = postLoginFrom(src, base, "a new admin password")
	if err != nil || code != http.StatusSeeOther {
		t.Errorf("login after `mohd passwd` from the throttled address: HTTP %d %v %.300s", code, err, body)
	}
}
