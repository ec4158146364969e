package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/testkit"
)

// newVersion is what the "bundle" carries: the second mohd build.
const newVersion = "9.9.0-test"

// fakeRauc is RAUC for a rollout test, where what matters is which slot
// comes up after the reboot, not how it was written (the real rauc is
// exercised by cmd/mohd's update tests). State lives in files of dir.
const fakeRauc = `#!/bin/sh
D=$(dirname "$0")
booted=$(cat $D/booted)
case "$1" in
info) echo '{"compatible":"moh-appliance-x86_64","version":"` + newVersion + `"}' ;;
install) echo " 50% Copying image"; echo B > $D/primary; echo "100% Installing done." ;;
status)
	case "$2" in
	mark-good) echo good > $D/state.$booted ;;
	mark-bad) echo bad > $D/state.$booted ;;
	*) printf '{"compatible":"moh-appliance-x86_64","booted":"%s","boot_primary":"rootfs.0","slots":[{"rootfs.0":{"bootname":"A","state":"x","boot_status":"good"}},{"rootfs.1":{"bootname":"B","state":"x","boot_status":"good"}}]}' $booted ;;
	esac ;;
*) exit 1 ;;
esac
`

// simBox is one appliance: a real mohd whose --reboot-command is
// answered by this harness as a power cycle would be: mohd dies, the
// bootloader picks a slot (B, or A again for a box whose new slot does
// not come up), the kernel gets a new boot id, and the mohd of that
// slot starts.
type simBox struct {
	t          *testing.T
	name       string
	addr, data string
	token      string
	dir        string
	fallsBack  bool
	v1, v2     string
	extra      []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  testkit.LockedBuffer
	quit chan struct{}
}

func newSimBox(t *testing.T, name, v1, v2 string, fallsBack bool, extra ...string) *simBox {
	b := &simBox{t: t, name: name, addr: testkit.FreeAddr(t), data: t.TempDir(), dir: t.TempDir(),
		fallsBack: fallsBack, v1: v1, v2: v2, extra: extra, quit: make(chan struct{})}
	out, err := exec.Command(v1, "token", "create", "--scope", "admin", "--data", b.data).Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	b.token = strings.TrimSpace(string(out))
	os.WriteFile(filepath.Join(b.dir, "rauc"), []byte(fakeRauc), 0o755)
	os.WriteFile(filepath.Join(b.dir, "booted"), []byte("A\n"), 0o644)
	b.start(v1)
	go b.rebooter()
	t.Cleanup(func() {
		close(b.quit)
		b.mu.Lock()
		b.kill()
		b.mu.Unlock()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, b.log.String())
		}
	})
	return b
}

// start runs bin; b.mu is held or the box is not shared yet.
func (b *simBox) start(bin string) {
	args := append([]string{"run", "--data", b.data, "--listen", b.addr, "--output", "null",
		"--update", "rauc", "--rauc-bin", filepath.Join(b.dir, "rauc"),
		"--reboot-command", "touch " + filepath.Join(b.dir, "reboot"),
		"--update-healthy", "1s", "--update-deadline", "20s"}, b.extra...)
	b.cmd = exec.Command(bin, args...)
	b.cmd.Stdout, b.cmd.Stderr = &b.log, &b.log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		b.t.Error(err)
		return
	}
	done := make(chan struct{})
	cmd := b.cmd
	go func() { cmd.Wait(); close(done) }()
	b.done = done
}

func (b *simBox) kill() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Kill()
		<-b.done
	}
}

func (b *simBox) rebooter() {
	marker := filepath.Join(b.dir, "reboot")
	for {
		select {
		case <-b.quit:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := os.Stat(marker); err != nil {
			continue
		}
		b.mu.Lock()
		b.kill()
		os.Remove(marker)
		slot, bin := "B", b.v2
		if b.fallsBack {
			slot, bin = "A", b.v1
		}
		os.WriteFile(filepath.Join(b.dir, "booted"), []byte(slot+"\n"), 0o644)
		// The kernel's new boot id, as mohd reads it after a real reboot.
		sp := filepath.Join(b.data, "update", "state.json")
		if raw, err := os.ReadFile(sp); err == nil {
			var st map[string]any
			json.Unmarshal(raw, &st)
			st["boot_id"] = "the-next-boot"
			raw, _ = json.Marshal(st)
			os.WriteFile(sp+".new", raw, 0o640)
			os.Rename(sp+".new", sp)
		}
		// The line is silent while it boots; the broker meanwhile sees the
		// old connection gone and publishes its last will, as it would
		// during a real reboot.
		time.Sleep(time.Second)
		b.start(bin)
		b.mu.Unlock()
	}
}

func (b *simBox) waitHealthy(t *testing.T) {
	t.Helper()
	testkit.WaitHealthy(t, "http://"+b.addr)
}

// TestUpdateRolloutHaltsOnRollback: a wave of two real boxes, one of
// which rolls back (its new slot does not come up); --halt-after 1 stops
// the rollout before the third box, the table says who did what and the
// exit code is 1. Over HTTP and over the broker.
func TestUpdateRolloutHaltsOnRollback(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs mohd and mosquitto")
	}
	v1 := testkit.MustBuildMohd(t, realVersion)
	v2 := testkit.MustBuildMohd(t, newVersion)
	for _, via := range []bool{false, true} {
		name := "http"
		if via {
			name = "mqtt"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ca := fleettest.MustCA(t, dir)
			// The company file server, signed by the fleet CA the boxes trust.
			srvCert, srvKey := ca.MustIssue(t, "files", true)
			bundle := bytes.Repeat([]byte("a signed bundle "), 4096)
			sum := sha256.Sum256(bundle)
			files := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write(bundle)
			}))
			pair, err := tls.LoadX509KeyPair(srvCert, srvKey)
			if err != nil {
				t.Fatal(err)
			}
			files.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
			files.StartTLS()
			defer files.Close()

			names := []string{"alpha", "bravo", "charlie"}
			common := []string{"--mqtt-ca", ca.CAFile}
			var broker *fleettest.Broker
			if via {
				broker, err = fleettest.StartBroker(dir, ca, fleettest.ACL(map[string][]string{"alpha": {"g"}, "bravo": {"g"}, "charlie": {"g"}}))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if t.Failed() {
						t.Logf("broker log:\n%s", broker.Log())
					}
					broker.Stop()
				})
			}
			var inv Inventory
			boxes := map[string]*simBox{}
			for _, n := range names {
				extra := append([]string{}, common...)
				if via {
					cert, key := ca.MustIssue(t, n, false)
					extra = append(extra, "--mqtt-broker", broker.URL(), "--mqtt-cert", cert, "--mqtt-key", key, "--device-id", n, "--groups", "g")
				}
				b := newSimBox(t, n, v1, v2, n == "bravo", extra...)
				boxes[n] = b
				inv.Boxes = append(inv.Boxes, Box{Name: n, URL: "http://" + b.addr, Token: b.token, Groups: []string{"g"}})
			}
			for _, b := range boxes {
				b.waitHealthy(t)
			}
			invPath := filepath.Join(dir, "inventory.json")
			raw, _ := json.Marshal(inv)
			os.WriteFile(invPath, raw, 0o600)
			args := []string{"--inventory", invPath}
			if via {
				opCert, opKey := ca.MustIssue(t, "operator", false)
				args = append(args, "--via", broker.URL(), "--ca", ca.CAFile, "--cert", opCert, "--key", opKey)
			}
			args = append(args, "update", files.URL+"/moh-"+newVersion+".raucb", "--sha256", hex.EncodeToString(sum[:]),
				"--wave", "2", "--halt-after", "1", "--wait", "60s", "--poll", "200ms")
			start := time.Now()
			code, out, errOut := runNow(t, args...)
			t.Logf("rollout took %s:\n%s%s", time.Since(start).Round(time.Millisecond), out, errOut)
			if code != exitFailed {
				t.Fatalf("exit %d, want %d", code, exitFailed)
			}
			want := map[string][]string{
				"alpha":   {realVersion, newVersion, "updated"},
				"bravo":   {realVersion, newVersion, "rollback", "slot B did not come up (booted A)"},
				"charlie": {"-", "-", "skipped", "rollout halted after 1 failed or rolled back"},
			}
			for n, w := range want {
				l := line(t, out, n)
				f := strings.Fields(l)
				if len(f) < 4 || f[1] != w[0] || f[2] != w[1] || f[3] != w[2] || (len(w) > 3 && !strings.Contains(l, w[3])) {
					t.Errorf("%s: row %q, want %v", n, l, w)
				}
			}
			if !strings.HasPrefix(out, "DEVICE") || !strings.Contains(errOut, "2 of 3 boxes not updated") {
				t.Errorf("header or summary missing:\n%s%s", out, errOut)
			}
			// charlie was never asked: still on the old version, idle.
			var st struct {
				Version string `json:"version"`
				System  struct {
					Update struct{ Phase string } `json:"update"`
				} `json:"system"`
			}
			req, _ := http.NewRequest("GET", "http://"+boxes["charlie"].addr+"/api/v1/status", nil)
			req.Header.Set("Authorization", "Bearer "+boxes["charlie"].token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if st.Version != realVersion || st.System.Update.Phase != "idle" {
				t.Errorf("charlie after the halted rollout: %+v", st)
			}
		})
	}
}

// TestUpdateFailureIsNotRollback: a box that refuses the update (here:
// update = off) is "failed" with its reason, told apart from a rollback.
func TestUpdateFailureIsNotRollback(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs mohd")
	}
	v1 := testkit.MustBuildMohd(t, realVersion)
	b := newSimBox(t, "delta", v1, v1, false, "--update", "off")
	b.waitHealthy(t)
	inv := Inventory{Boxes: []Box{{Name: "delta", URL: "http://" + b.addr, Token: b.token}}}
	invPath := filepath.Join(t.TempDir(), "inventory.json")
	raw, _ := json.Marshal(inv)
	os.WriteFile(invPath, raw, 0o600)
	code, out, errOut := runNow(t, "--inventory", invPath, "-o", "json", "update", "https://127.0.0.1:1/b.raucb",
		"--sha256", strings.Repeat("ab", 32))
	var rows []updateRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("exit %d: %v\n%s%s", code, err, out, errOut)
	}
	if code != exitFailed || rows[0].Result != "failed" || rows[0].From != realVersion || !strings.Contains(rows[0].Reason, "update_off") {
		t.Fatalf("exit %d, row %+v", code, rows[0])
	}
	if code, _, _ := runNow(t, "--inventory", invPath, "update", "http://plain/b", "--sha256", strings.Repeat("ab", 32)); code != exitUsage {
		t.Fatalf("a plain-http bundle URL: exit %d, want %d", code, exitUsage)
	}
}
