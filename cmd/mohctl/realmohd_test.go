package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/player"
)

// buildMohd builds the real daemon once for the tests that need it.
var buildMohd = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "mohctl-mohd-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mohd")
	out, err := exec.Command("go", "build", "-o", bin, "../mohd").CombinedOutput()
	if err != nil {
		return "", &buildError{out: string(out), err: err}
	}
	return bin, nil
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

type realBox struct {
	name, addr, data, token, tokenID string
	cmd                              *exec.Cmd
	log                              bytes.Buffer
}

func startMohd(t *testing.T, bin, name string) *realBox {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &realBox{name: name, addr: l.Addr().String(), data: t.TempDir()}
	l.Close()
	out, err := exec.Command(bin, "token", "create", "--scope", "admin", "--data", b.data).Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	b.token = strings.TrimSpace(string(out))
	b.cmd = exec.Command(bin, "run", "--data", b.data, "--listen", b.addr, "--output", "null")
	b.cmd.Stdout, b.cmd.Stderr = &b.log, &b.log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s log:\n%s", name, b.log.String())
		}
	})
	// Wait for the API, then learn the token's id as an operator would
	// (`GET /api/v1/tokens` on a fresh box lists just this one).
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+b.addr+"/api/v1/tokens", nil)
		req.Header.Set("Authorization", "Bearer "+b.token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var body struct{ Tokens []tokenInfo }
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == 200 && len(body.Tokens) == 1 {
				b.tokenID = body.Tokens[0].ID
				return b
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: API not up: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAgainstRealMohd drives real mohd processes on loopback, one of them
// down, through the commands an operator uses.
func TestAgainstRealMohd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs mohd")
	}
	bin, err := buildMohd()
	if err != nil {
		t.Fatalf("build mohd: %v", err)
	}
	mp3 := filepath.Join(t.TempDir(), "chime.mp3")
	if out, err := exec.Command("ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
		"-ac", "2", "-ar", "44100", "-b:a", "128k", mp3).CombinedOutput(); err != nil {
		t.Fatalf("make test mp3: %v %s", err, out)
	}

	var inv Inventory
	boxes := map[string]*realBox{}
	for _, n := range []string{"east", "west"} {
		b := startMohd(t, bin, n)
		boxes[n] = b
		inv.Boxes = append(inv.Boxes, Box{Name: n, URL: "http://" + b.addr, Token: b.token, TokenID: b.tokenID, Groups: []string{"all"}})
	}
	// Until the watchdog has seen audio flow, a box's health is critical
	// ("starting"): wait for that, as an operator would after a boot.
	for n, b := range boxes {
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get("http://" + b.addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /healthz never turned 200", n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	inv.Boxes = append(inv.Boxes, Box{Name: "north", URL: "http://" + l.Addr().String(), Token: "moh_x", Groups: []string{"all"}})
	l.Close()
	invPath := filepath.Join(t.TempDir(), "inventory.json")
	raw, _ := json.Marshal(inv)
	os.WriteFile(invPath, raw, 0o600)
	run := func(args ...string) (int, string, string) {
		return runCLI(t, append([]string{"--inventory", invPath, "--timeout", "20s"}, args...)...)
	}

	code, out, errOut := run("status")
	if code != player.HealthCritical.Code() || !strings.Contains(errOut, "1 of 3 boxes failed") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	if l := line(t, out, "north"); !strings.Contains(l, "DOWN") || !strings.Contains(l, "connection refused") {
		t.Errorf("north: %q", l)
	}
	for _, n := range []string{"east", "west"} {
		if l := line(t, out, n); strings.Contains(l, "DOWN") || !strings.Contains(l, "now") {
			t.Errorf("%s: %q", n, l)
		}
	}
	t.Logf("\n%s", out)

	if code, out, _ = run("volume", "35", "--group", "east"); code != exitOK || !strings.Contains(out, "volume 35") {
		t.Errorf("volume: %d %s", code, out)
	}
	if code, out, _ = run("push", mp3, "--group", "west"); code != exitOK || !strings.Contains(out, "added chime.mp3") {
		t.Fatalf("push: %d %s", code, out)
	}
	if code, out, _ = run("playlist", "--group", "west"); code != exitOK || !strings.Contains(out, "chime") {
		t.Errorf("playlist: %d %s", code, out)
	}
	if code, out, _ = run("remove", "chime.mp3", "--group", "west"); code != exitOK {
		t.Errorf("remove: %d %s", code, out)
	}
	if code, out, _ = run("token", "rotate", "--group", "east"); code != exitOK || !strings.Contains(out, "revoked") {
		t.Errorf("rotate: %d %s", code, out)
	}
	// The old token is dead, the saved one works.
	req, _ := http.NewRequest("GET", "http://"+boxes["east"].addr+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+boxes["east"].token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("old token after rotation: %v %v", resp.StatusCode, err)
	}
	if code, out, _ = run("status", "--group", "east", "-o", "json"); code != exitOK || !strings.Contains(out, `"volume": 35`) {
		t.Errorf("status after rotation: %d %s", code, out)
	}
}
