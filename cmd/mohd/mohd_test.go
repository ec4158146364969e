package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// mohdBin is built once per test run; tests run the real binary.
var mohdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mohd-test-")
	if err != nil {
		panic(err)
	}
	mohdBin = filepath.Join(dir, "mohd")
	out, err := exec.Command("go", "build", "-o", mohdBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build mohd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// mohdCmd runs a mohd subcommand to completion; a non-zero exit is an
// error carrying stderr.
func mohdCmd(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	code, out, errOut := runMohd(t, stdin, args...)
	if code != 0 {
		return out, fmt.Errorf("exit status %d: %s", code, errOut)
	}
	return out, nil
}

// createToken runs `mohd token create` for scope in data and returns the
// token.
func createToken(t *testing.T, data, scope string) string {
	t.Helper()
	out, err := mohdCmd(t, "", "token", "create", "--scope", scope, "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(lastLine(out))
}

// loop441Data is a data dir whose library holds a 3 s loop of whole
// 441 Hz periods: gapless playback makes it one endless sine, and any
// gap or click at the loop point shows.
func loop441Data(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	lib := filepath.Join(data, "library")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	testkit.SineMP3(t, filepath.Join(lib, "loop441.mp3"), 3, 441, 0.5, 192)
	return data
}

// mohdProc is a `mohd run` the test owns, killed and reaped at its end.
type mohdProc struct {
	*testkit.Proc
	addr string
}

func startDaemon(t *testing.T, data, addr string, extra ...string) *mohdProc {
	t.Helper()
	args := append([]string{"run", "--data", data, "--listen", addr, "--output", "null"}, extra...)
	return &mohdProc{Proc: testkit.Start(t, exec.Command(mohdBin, args...)), addr: addr}
}

type apiClient struct {
	base, token string
	hc          *http.Client
}

func (c *apiClient) do(method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil && resp.StatusCode < 300 {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

type statusDoc struct {
	State  string `json:"state"`
	Wanted string `json:"wanted"`
	Volume int    `json:"volume"`
	Frames uint64 `json:"frames"`
}

func (c *apiClient) status() (statusDoc, error) {
	var s statusDoc
	code, err := c.do("GET", "/api/v1/status", nil, &s)
	if err == nil && code != 200 {
		err = fmt.Errorf("status: HTTP %d", code)
	}
	return s, err
}

// waitFlowing waits until the daemon answers and, if playing is wanted,
// audio frames advance; it returns how long that took.
func waitFlowing(t *testing.T, c *apiClient, d *mohdProc, start time.Time) (statusDoc, time.Duration) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var first *statusDoc
	for time.Now().Before(deadline) {
		if d.Exited() {
			t.Fatalf("mohd exited early:\n%s", d.Log)
		}
		s, err := c.status()
		if err == nil {
			if s.Wanted != "playing" && s.State == "stopped" {
				return s, time.Since(start)
			}
			if s.Wanted == "playing" && s.State == "playing" {
				if first == nil {
					first = &s
				} else if s.Frames > first.Frames {
					return s, time.Since(start)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("mohd did not resume within 20 s:\n%s", d.Log)
	return statusDoc{}, 0
}

type settingsDoc struct {
	Volume  int  `json:"volume"`
	Playing bool `json:"playing"`
}

// TestKill9WhileChangingState kills mohd with SIGKILL at random moments
// while an admin changes volume and play/stop, 50 times. Every restart
// must come up with a valid state file holding either the last
// acknowledged settings or the change in flight, and resume.
func TestKill9WhileChangingState(t *testing.T) {
	data := t.TempDir()
	token := createToken(t, data, "admin")
	acked := settingsDoc{Volume: 80, Playing: true} // the defaults
	var resumes []time.Duration
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 50; i++ {
		addr := testkit.FreeAddr(t)
		start := time.Now()
		d := startDaemon(t, data, addr)
		c := &apiClient{base: "http://" + addr, token: token, hc: &http.Client{Timeout: 5 * time.Second}}
		s, took := waitFlowing(t, c, d, start)
		resumes = append(resumes, took)
		got := settingsDoc{Volume: s.Volume, Playing: s.Wanted == "playing"}
		if got != acked {
			t.Fatalf("round %d: restarted with %+v, want the last acknowledged %+v", i, got, acked)
		}
		b, err := os.ReadFile(filepath.Join(data, stateFile))
		if err == nil {
			var st settingsDoc
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatalf("round %d: state file damaged: %v: %q", i, err, b)
			}
		}

		// Change state continuously and kill at a random moment.
		var mu sync.Mutex
		inflight := acked
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			cur := acked
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				next := cur
				var code int
				var err error
				mu.Lock()
				if j%3 == 2 {
					next.Playing = !cur.Playing
					inflight = next
					mu.Unlock()
					verb := "stop"
					if next.Playing {
						verb = "play"
					}
					code, err = c.do("POST", "/api/v1/player/"+verb, nil, nil)
				} else {
					next.Volume = (cur.Volume + 7 + j) % 101
					inflight = next
					mu.Unlock()
					code, err = c.do("PUT", "/api/v1/volume", map[string]int{"volume": next.Volume}, nil)
				}
				if err != nil || code >= 300 {
					return // killed mid-request
				}
				mu.Lock()
				acked, cur = next, next
				mu.Unlock()
			}
		}()
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		d.Kill()
		close(stop)
		wg.Wait()
		// After the kill the state file holds either the acknowledged
		// settings or the one in flight; whichever it is, the next round
		// must come up with it.
		b, err = os.ReadFile(filepath.Join(data, stateFile))
		if err != nil {
			if acked != (settingsDoc{Volume: 80, Playing: true}) {
				t.Fatalf("round %d: state file missing after acknowledged changes: %v", i, err)
			}
			continue
		}
		var st settingsDoc
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("round %d: state file damaged after kill: %v: %q", i, err, b)
		}
		mu.Lock()
		switch st {
		case acked:
		case inflight:
			acked = inflight // written before the kill, not yet acknowledged
		default:
			t.Fatalf("round %d: state file holds %+v, want acknowledged %+v or in-flight %+v", i, st, acked, inflight)
		}
		mu.Unlock()
	}
	var worst, sum time.Duration
	for _, r := range resumes {
		sum += r
		worst = max(worst, r)
	}
	t.Logf("50 kill -9 rounds: start-to-audio mean %v, worst %v", sum/time.Duration(len(resumes)), worst)
	if n := countTemps(t, data); n != 0 {
		t.Logf("%d temp files left by kills (removed at next start)", n)
	}
}

func countTemps(t *testing.T, dir string) int {
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".moh-tmp-") {
			n++
		}
	}
	return n
}

// TestCheckPlugin runs `mohd check` against a real mohd: OK while it
// plays, CRITICAL once it is gone, one line with perfdata either way.
func TestCheckPlugin(t *testing.T) {
	data := t.TempDir()
	addr := testkit.FreeAddr(t)
	d := startDaemon(t, data, addr)
	tok := createToken(t, data, "read")
	c := &apiClient{base: "http://" + addr, token: tok, hc: &http.Client{Timeout: 5 * time.Second}}
	waitFlowing(t, c, d, time.Now())
	waitHealthy(t, "http://"+addr)
	runCheck := func() (int, string) {
		cmd := exec.Command(mohdBin, "check", "--data", data, "--listen", addr)
		out, _ := cmd.Output()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	code, out := runCheck()
	if code != 0 || !strings.HasPrefix(out, "MOH OK") || !strings.Contains(out, "|") {
		t.Fatalf("check while playing: exit %d, %q", code, out)
	}
	d.Kill()
	code, out = runCheck()
	if code != 2 || !strings.HasPrefix(out, "MOH CRITICAL") {
		t.Fatalf("check with mohd down: exit %d, %q", code, out)
	}
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	testkit.WaitHealthy(t, base)
}
