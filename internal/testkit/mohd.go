package testkit

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Mohd is a real `mohd run` on a free loopback port with its own data
// dir and an admin token.
type Mohd struct {
	*Proc
	Name, Addr, Data string
	Token, TokenID   string
}

// URL is the daemon's http:// base.
func (m *Mohd) URL() string { return "http://" + m.Addr }

// StartMohd creates an admin token in a fresh data dir, starts `mohd run`
// with --output null (extra are more flags) and waits until the API
// answers, learning the token's id as an operator would (`GET
// /api/v1/tokens` on a fresh box lists just this one). A failing test
// logs the daemon's output. It may be called from a goroutine other than
// the test's: a daemon that does not come up is reported with t.Errorf
// and the Mohd returned as it is.
func StartMohd(t testing.TB, bin, name string, extra ...string) *Mohd {
	t.Helper()
	m := &Mohd{Name: name, Addr: FreeAddr(t), Data: t.TempDir()}
	out, err := exec.Command(bin, "token", "create", "--scope", "admin", "--data", m.Data).Output()
	if err != nil {
		t.Errorf("%s: token create: %v", name, err)
		return m
	}
	m.Token = strings.TrimSpace(string(out))
	m.Proc = Start(t, exec.Command(bin, append([]string{"run", "--data", m.Data, "--listen", m.Addr, "--output", "null"}, extra...)...))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", name, m.Log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", m.URL()+"/api/v1/tokens", nil)
		req.Header.Set("Authorization", "Bearer "+m.Token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var body struct {
				Tokens []struct {
					ID string `json:"id"`
				} `json:"tokens"`
			}
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && len(body.Tokens) == 1 {
				m.TokenID = body.Tokens[0].ID
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: API not up: %v", name, err)
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitHealthy waits until base's /healthz answers 200: until the
// watchdog has seen audio flow a box is critical ("starting").
func WaitHealthy(t testing.TB, base string) {
	t.Helper()
	WaitFor(t, 20*time.Second, 50*time.Millisecond, base+"/healthz to turn 200", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
