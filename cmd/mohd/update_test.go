package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// raucRig is a real RAUC on this machine: its own D-Bus system bus (a
// private dbus-daemon, so the machine's bus is untouched), `rauc service`
// on it with file-backed raw slots A and B and RAUC's custom bootloader
// backend (a script keeping primary and good/bad in files), a signing CA
// and a second, foreign one. mohd reaches it through a wrapper given as
// --rauc-bin that adds --conf and the bus address.
type raucRig struct {
	t        *testing.T
	dir      string
	conf     string
	wrapper  string
	bus      string
	dbus     *exec.Cmd
	service  *exec.Cmd
	slotA    string
	slotB    string
	bootDir  string
	rebooted string // the --reboot-command touches it
}

func run1(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func newRaucRig(t *testing.T) *raucRig {
	t.Helper()
	dir := t.TempDir()
	r := &raucRig{t: t, dir: dir, conf: filepath.Join(dir, "system.conf"), slotA: filepath.Join(dir, "slotA.img"),
		slotB: filepath.Join(dir, "slotB.img"), bootDir: filepath.Join(dir, "boot"), rebooted: filepath.Join(dir, "rebooted")}
	for _, ca := range []string{"ca", "evil"} {
		run1(t, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", filepath.Join(dir, ca+".key"),
			"-out", filepath.Join(dir, ca+".pem"), "-days", "30", "-subj", "/CN=moh test "+ca)
	}
	run1(t, "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", filepath.Join(dir, "sign.key"),
		"-out", filepath.Join(dir, "sign.csr"), "-subj", "/CN=moh test signer")
	run1(t, "openssl", "x509", "-req", "-in", filepath.Join(dir, "sign.csr"), "-CA", filepath.Join(dir, "ca.pem"),
		"-CAkey", filepath.Join(dir, "ca.key"), "-CAcreateserial", "-out", filepath.Join(dir, "sign.pem"), "-days", "30")
	os.MkdirAll(r.bootDir, 0o755)
	// RAUC's custom bootloader interface; GRUB's grubenv in the image.
	backend := filepath.Join(dir, "bootloader.sh")
	writeFile(t, backend, 0o755, `#!/bin/sh
D=`+r.bootDir+`
case "$1" in
get-primary) cat $D/primary 2>/dev/null || echo A ;;
set-primary) echo "$2" > $D/primary ;;
get-state) cat $D/state.$2 2>/dev/null || echo good ;;
set-state) echo "$3" > $D/state.$2 ;;
get-current) cat $D/current 2>/dev/null || echo A ;;
*) exit 1 ;;
esac
`)
	writeFile(t, r.conf, 0o644, fmt.Sprintf(`[system]
compatible=moh-appliance-x86_64
bootloader=custom
data-directory=%s/rauc-data

[handlers]
bootloader-custom-backend=%s

[keyring]
path=%s/ca.pem

[slot.rootfs.0]
device=%s
type=raw
bootname=A

[slot.rootfs.1]
device=%s
type=raw
bootname=B
`, dir, backend, dir, r.slotA, r.slotB))
	writeFile(t, r.slotA, 0o644, strings.Repeat("slot A, release 1.0\n", 400))
	writeFile(t, r.slotB, 0o644, strings.Repeat("\x00", 8000))

	// A bus of our own: the socket path is the address.
	sock := filepath.Join(dir, "bus.sock")
	r.bus = "unix:path=" + sock
	busConf := filepath.Join(dir, "bus.conf")
	writeFile(t, busConf, 0o644, `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>`+r.bus+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`)
	r.dbus = exec.Command("dbus-daemon", "--config-file="+busConf, "--nofork", "--nopidfile")
	if err := r.dbus.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.dbus.Process.Kill(); r.dbus.Wait() })
	testkit.WaitFor(t, 10*time.Second, 20*time.Millisecond, "the private D-Bus socket", func() bool { _, err := os.Stat(sock); return err == nil })

	r.wrapper = filepath.Join(dir, "rauc-bin")
	r.writeWrapper("")
	r.startService("A")
	return r
}

// writeWrapper is mohd's --rauc-bin: the real rauc with this rig's
// config and bus; installHook, if set, runs first for `install`.
func (r *raucRig) writeWrapper(installHook string) {
	hook := ""
	if installHook != "" {
		hook = "if [ \"$1\" = install ]; then " + installHook + "; fi\n"
	}
	writeFile(r.t, r.wrapper, 0o755, "#!/bin/sh\nexport DBUS_SYSTEM_BUS_ADDRESS="+r.bus+"\n"+hook+
		"exec rauc --conf="+r.conf+" \"$@\"\n")
}

// startService (re)starts `rauc service` as if the box had booted slot
// boot: RAUC reads the booted slot from the kernel command line, which
// --override-boot-slot stands in for.
func (r *raucRig) startService(boot string) {
	r.t.Helper()
	if r.service != nil {
		r.service.Process.Kill()
		r.service.Wait()
	}
	cmd := exec.Command("rauc", "service", "--conf="+r.conf, "--override-boot-slot="+boot)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+r.bus)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.service = cmd
	r.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testkit.WaitFor(r.t, 10*time.Second, 20*time.Millisecond, "rauc service", func() bool {
		out, err := exec.Command(r.wrapper, "status", "--output-format=json").Output()
		return err == nil && strings.Contains(string(out), `"booted":"`+boot+`"`)
	})
}

// bundle builds a signed bundle whose root image carries content.
func (r *raucRig) bundle(name, compatible, version, signer, content string) string {
	r.t.Helper()
	src := filepath.Join(r.dir, "src-"+name)
	os.MkdirAll(src, 0o755)
	writeFile(r.t, filepath.Join(src, "rootfs.img"), 0o644, content)
	writeFile(r.t, filepath.Join(src, "manifest.raucm"), 0o644, fmt.Sprintf(
		"[update]\ncompatible=%s\nversion=%s\n\n[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=rootfs.img\n", compatible, version))
	out := filepath.Join(r.dir, name+".raucb")
	cert, key := filepath.Join(r.dir, "sign.pem"), filepath.Join(r.dir, "sign.key")
	if signer == "evil" {
		cert, key = filepath.Join(r.dir, "evil.pem"), filepath.Join(r.dir, "evil.key")
	}
	run1(r.t, "rauc", "bundle", "--cert="+cert, "--key="+key, src, out)
	return out
}

// disks is everything an install could change: both slots and the
// bootloader's state.
func (r *raucRig) disks() string {
	r.t.Helper()
	var b strings.Builder
	for _, p := range []string{r.slotA, r.slotB} {
		fmt.Fprintf(&b, "%s=%s ", filepath.Base(p), fileSHA(r.t, p))
	}
	ents, _ := os.ReadDir(r.bootDir)
	for _, e := range ents {
		raw, _ := os.ReadFile(filepath.Join(r.bootDir, e.Name()))
		fmt.Fprintf(&b, "%s=%s ", e.Name(), strings.TrimSpace(string(raw)))
	}
	return b.String()
}

func (r *raucRig) bootState(slot string) string {
	raw, err := os.ReadFile(filepath.Join(r.bootDir, "state."+slot))
	if err != nil {
		return "good" // the backend's default, as the script says
	}
	return strings.TrimSpace(string(raw))
}

func writeFile(t *testing.T, path string, mode os.FileMode, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(raw)
	return hex.EncodeToString(h[:])
}

// updateBox is one mohd with update = rauc on the rig.
type updateBox struct {
	t    *testing.T
	rig  *raucRig
	data string
	addr string
	c    *apiClient
	d    *mohdProc
}

func newUpdateBox(t *testing.T, rig *raucRig) *updateBox {
	data := t.TempDir()
	out := createToken(t, data, "admin")
	b := &updateBox{t: t, rig: rig, data: data, addr: testkit.FreeAddr(t)}
	b.c = &apiClient{base: "http://" + b.addr, token: out, hc: &http.Client{Timeout: 30 * time.Second}}
	return b
}

func (b *updateBox) start(extra ...string) {
	b.t.Helper()
	args := append([]string{"--update", "rauc", "--rauc-bin", b.rig.wrapper,
		"--reboot-command", "touch " + b.rig.rebooted, "--update-healthy", "2s", "--update-deadline", "6s"}, extra...)
	b.d = startDaemon(b.t, b.data, b.addr, args...)
	testkit.WaitFor(b.t, 20*time.Second, 20*time.Millisecond, "mohd to answer", func() bool {
		_, err := b.c.status()
		return err == nil
	})
}

type systemAnswer struct {
	Update        string `json:"update"`
	RaucAvailable bool   `json:"rauc_available"`
	Booted        string `json:"booted"`
	Slots         []struct {
		Bootname string `json:"bootname"`
		Version  string `json:"version"`
		Booted   bool   `json:"booted"`
		Primary  bool   `json:"primary"`
		Good     bool   `json:"good"`
	} `json:"slots"`
	State struct {
		Phase         string `json:"phase"`
		Progress      int    `json:"progress"`
		TargetSlot    string `json:"target_slot"`
		TargetVersion string `json:"target_version"`
		Reason        string `json:"reason"`
		RebootAt      string `json:"reboot_at"`
	} `json:"state"`
}

func (b *updateBox) system() systemAnswer {
	b.t.Helper()
	var s systemAnswer
	if code, err := b.c.do("GET", "/api/v1/system", nil, &s); err != nil || code != 200 {
		b.t.Fatalf("GET /api/v1/system: %d %v", code, err)
	}
	return s
}

func (b *updateBox) waitPhase(want string, d time.Duration) systemAnswer {
	b.t.Helper()
	var s systemAnswer
	testkit.WaitFor(b.t, d, 20*time.Millisecond, "phase "+want, func() bool { s = b.system(); return s.State.Phase == want })
	return s
}

type errAnswer struct {
	Error struct{ Code, Message string } `json:"error"`
}

// upload posts a bundle as the web page and curl do.
func (b *updateBox) upload(path, sha, reboot string) (int, errAnswer) {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if sha != "" {
		mw.WriteField("sha256", sha)
	}
	if reboot != "" {
		mw.WriteField("reboot", reboot)
	}
	fw, _ := mw.CreateFormFile("bundle", filepath.Base(path))
	raw, err := os.ReadFile(path)
	if err != nil {
		b.t.Fatal(err)
	}
	fw.Write(raw)
	mw.Close()
	req, _ := http.NewRequest("POST", b.c.base+"/api/v1/system/update", &body)
	req.Header.Set("Authorization", "Bearer "+b.c.token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := b.c.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var e errAnswer
	rb, _ := io.ReadAll(resp.Body)
	json.Unmarshal(rb, &e)
	return resp.StatusCode, e
}

func (b *updateBox) bundleFiles() []string {
	ents, _ := os.ReadDir(filepath.Join(b.data, "update"))
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "bundle") {
			out = append(out, e.Name())
		}
	}
	return out
}

func (b *updateBox) metric(name string) string {
	b.t.Helper()
	resp, err := http.Get(b.c.base + "/metrics")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, name+" ") {
			return strings.TrimPrefix(l, name+" ")
		}
	}
	return ""
}

func sha(t *testing.T, path string) string { return fileSHA(t, path) }

// TestUpdateRefusesBadBundlesThenInstalls drives the real mohd API over
// the real rauc: a bundle signed by another CA, one with a byte flipped,
// one for another compatible and one with a wrong sha256 are refused
// with 422 and leave both slots and the bootloader untouched; the good
// one is installed into slot B by RAUC and the reboot is asked for.
func TestUpdateRefusesBadBundlesThenInstalls(t *testing.T) {
	rig := newRaucRig(t)
	good := rig.bundle("good", "moh-appliance-x86_64", "2.0.0", "ca", strings.Repeat("slot B, release 2.0.0\n", 300))
	evil := rig.bundle("evil", "moh-appliance-x86_64", "2.0.0", "evil", "evil root")
	other := rig.bundle("other", "someone-elses-box", "2.0.0", "ca", "other root")
	flipped := filepath.Join(rig.dir, "flipped.raucb")
	raw, _ := os.ReadFile(good)
	raw[len(raw)/3] ^= 0x01
	writeFile(t, flipped, 0o644, string(raw))

	b := newUpdateBox(t, rig)
	b.start()
	if s := b.system(); s.Update != "rauc" || !s.RaucAvailable || s.Booted != "A" || len(s.Slots) != 2 || s.State.Phase != "idle" {
		t.Fatalf("GET /api/v1/system before: %+v", s)
	}
	before := rig.disks()
	for _, tc := range []struct {
		name, path, sha, code string
	}{
		{"signed by another CA", evil, "", "bundle_refused"},
		{"one byte flipped", flipped, "", "bundle_refused"},
		{"wrong compatible", other, "", "bundle_refused"},
		{"wrong sha256", good, strings.Repeat("0", 64), "sha256_mismatch"},
	} {
		code, e := b.upload(tc.path, tc.sha, "now")
		if code != 422 || e.Error.Code != tc.code {
			t.Errorf("%s: HTTP %d %+v, want 422 %s", tc.name, code, e, tc.code)
		}
		if after := rig.disks(); after != before {
			t.Fatalf("%s: the slots changed:\n%s\n%s", tc.name, before, after)
		}
		if f := b.bundleFiles(); len(f) != 0 {
			t.Errorf("%s: bundle kept on the box: %v", tc.name, f)
		}
		if s := b.system(); s.State.Phase != "failed" || s.State.Reason == "" {
			t.Errorf("%s: state %+v, want failed with a reason", tc.name, s.State)
		}
	}
	if _, err := os.Stat(rig.rebooted); err == nil {
		t.Fatal("a refused bundle rebooted the box")
	}

	code, e := b.upload(good, sha(t, good), "now")
	if code != 202 {
		t.Fatalf("good bundle: HTTP %d %+v", code, e)
	}
	s := b.waitPhase("rebooting", 30*time.Second)
	if s.State.TargetSlot != "B" || s.State.TargetVersion != "2.0.0" || s.State.Progress != 100 {
		t.Fatalf("after install: %+v", s.State)
	}
	// A raw slot gets the image written over its start.
	img, _ := os.ReadFile(filepath.Join(rig.dir, "src-good", "rootfs.img"))
	slotB, _ := os.ReadFile(rig.slotB)
	if !bytes.HasPrefix(slotB, img) {
		t.Fatalf("slot B does not hold the bundle's image (%.40q…)", slotB)
	}
	if fileSHA(t, rig.slotA) != strings.Fields(before)[0][len("slotA.img="):] {
		t.Fatal("slot A changed")
	}
	for _, sl := range s.Slots {
		if sl.Bootname == "B" && (!sl.Primary || sl.Version != "2.0.0") {
			t.Fatalf("slot B after install: %+v", sl)
		}
	}
	if f := b.bundleFiles(); len(f) != 0 {
		t.Fatalf("bundle kept after install: %v", f)
	}
	testkit.WaitFor(t, 10*time.Second, 20*time.Millisecond, "the reboot command", func() bool { _, err := os.Stat(rig.rebooted); return err == nil })
	// Busy until the reboot: a second update is refused.
	if code, e := b.upload(good, "", "now"); code != 409 || e.Error.Code != "update_running" {
		t.Fatalf("second update while the reboot is pending: %d %+v", code, e)
	}
}

// installForReal puts bundle into slot B with the real rauc, as the
// first half of an update, and leaves state.json as mohd leaves it
// before the reboot, but with another boot's id: the next mohd start is
// the first boot after the update.
func installForReal(t *testing.T, rig *raucRig, b *updateBox, bundle string) {
	run1(t, rig.wrapper, "install", bundle)
	os.MkdirAll(filepath.Join(b.data, "update"), 0o750)
	writeFile(t, filepath.Join(b.data, "update", "state.json"), 0o640,
		`{"phase":"rebooting","target_slot":"B","target_version":"2.0.0","from_version":"1.0","from_slot":"A","reason":"","updated_at":"2026-12-01T10:00:00Z","reboot_at":"2026-12-01T10:00:00Z","boot_id":"a-boot-before-this-one"}`)
}

func TestUpdateTrialMarksGoodWhenHealthy(t *testing.T) {
	rig := newRaucRig(t)
	good := rig.bundle("good", "moh-appliance-x86_64", "2.0.0", "ca", "root 2.0.0")
	b := newUpdateBox(t, rig)
	installForReal(t, rig, b, good)
	if rig.bootState("B") != "bad" {
		t.Fatalf("slot B is %q before its trial, want bad (RAUC marks it until mark-good)", rig.bootState("B"))
	}
	rig.startService("B")
	b.start()
	s := b.waitPhase("good", 20*time.Second)
	if rig.bootState("B") != "good" || s.Booted != "B" {
		t.Fatalf("slot B %q, booted %s: want good, B", rig.bootState("B"), s.Booted)
	}
	if _, err := os.Stat(rig.rebooted); err == nil {
		t.Fatal("rebooted a healthy new slot")
	}
	var ev struct {
		Events []struct{ Kind, Message string } `json:"events"`
	}
	b.c.do("GET", "/api/v1/events", nil, &ev)
	found := false
	for _, e := range ev.Events {
		found = found || (e.Kind == "update" && strings.Contains(e.Message, "now running 2.0.0 in slot B"))
	}
	if !found {
		t.Fatalf("no 'now running' event in %+v", ev)
	}
	if got := b.metric(`moh_update_phase{phase="good"}`); got != "1" {
		t.Fatalf(`moh_update_phase{phase="good"} = %q`, got)
	}
}

func TestUpdateTrialWithoutHealthRollsBack(t *testing.T) {
	rig := newRaucRig(t)
	good := rig.bundle("good", "moh-appliance-x86_64", "2.0.0", "ca", "root 2.0.0")
	b := newUpdateBox(t, rig)
	installForReal(t, rig, b, good)
	rig.startService("B")
	// This release cannot play: its output never opens (critical).
	b.start("--output", "file:/nonexistent/out.raw")
	s := b.waitPhase("rollback", 30*time.Second)
	if !strings.Contains(s.State.Reason, "slot B") {
		t.Fatalf("reason %q", s.State.Reason)
	}
	if rig.bootState("B") != "bad" {
		t.Fatalf("slot B is %q after the deadline, want bad", rig.bootState("B"))
	}
	testkit.WaitFor(t, 10*time.Second, 20*time.Millisecond, "the reboot back", func() bool { _, err := os.Stat(rig.rebooted); return err == nil })
	if got := b.metric("moh_update_rollbacks_total"); got != "1" {
		t.Fatalf("moh_update_rollbacks_total = %q", got)
	}
	// The box comes back in A (GRUB skips the bad slot): the rollback
	// stays reported, and survives into the new boot's metrics.
	b.d.Kill()
	os.Remove(rig.rebooted)
	rig.startService("A")
	b.start()
	time.Sleep(3 * time.Second) // longer than update-healthy
	if s := b.system(); s.State.Phase != "rollback" || s.Booted != "A" {
		t.Fatalf("after falling back: %+v", s)
	}
	if got := b.metric("moh_update_rollbacks_total"); got != "1" {
		t.Fatalf("moh_update_rollbacks_total after the reboot = %q", got)
	}
	if _, err := os.Stat(rig.rebooted); err == nil {
		t.Fatal("rebooted again from the good slot")
	}
}

func TestUpdateGrubFellBackIsRollback(t *testing.T) {
	rig := newRaucRig(t)
	good := rig.bundle("good", "moh-appliance-x86_64", "2.0.0", "ca", "root 2.0.0")
	b := newUpdateBox(t, rig)
	installForReal(t, rig, b, good)
	// The reboot happened, but GRUB booted A again.
	b.start()
	s := b.waitPhase("rollback", 10*time.Second)
	if s.State.Reason != "slot B did not come up (booted A)" {
		t.Fatalf("reason %q", s.State.Reason)
	}
	var st struct {
		System struct {
			Update struct{ Phase, Reason string } `json:"update"`
		} `json:"system"`
	}
	// GET /api/v1/status answers from a snapshot up to 50 ms old (the
	// one taken when start saw mohd answer may predate the rollback):
	// the rollback shows there within a few snapshots, and stays.
	testkit.WaitFor(t, 2*time.Second, 20*time.Millisecond, "status.system.update to say rollback", func() bool {
		b.c.do("GET", "/api/v1/status", nil, &st)
		return st.System.Update.Phase == "rollback"
	})
	if st.System.Update.Reason != s.State.Reason {
		t.Fatalf("status.system.update = %+v, /api/v1/system says %q", st.System.Update, s.State.Reason)
	}
}

// TestUpdateKill9DuringInstall is a power cut in the middle of an
// install: mohd and rauc die at once; the next start reports failed,
// keeps no bundle, and takes the next update.
func TestUpdateKill9DuringInstall(t *testing.T) {
	rig := newRaucRig(t)
	good := rig.bundle("good", "moh-appliance-x86_64", "2.0.0", "ca", "root 2.0.0")
	b := newUpdateBox(t, rig)
	pidFile := filepath.Join(rig.dir, "install.pid")
	rig.writeWrapper("echo $$ > " + pidFile + "; exec sleep 120")
	b.start()
	if code, e := b.upload(good, "", "now"); code != 202 {
		t.Fatalf("HTTP %d %+v", code, e)
	}
	b.waitPhase("installing", 10*time.Second)
	b.d.Kill()
	testkit.WaitFor(t, 5*time.Second, 20*time.Millisecond, "the install's pid", func() bool { _, err := os.Stat(pidFile); return err == nil })
	raw, _ := os.ReadFile(pidFile)
	var pid int
	fmt.Sscan(string(raw), &pid)
	syscall.Kill(pid, syscall.SIGKILL)

	rig.writeWrapper("")
	b.start()
	s := b.system()
	if s.State.Phase != "failed" || !strings.Contains(s.State.Reason, "interrupted while installing") {
		t.Fatalf("after the cut: %+v", s.State)
	}
	if f := b.bundleFiles(); len(f) != 0 {
		t.Fatalf("bundle kept after the cut: %v", f)
	}
	if code, e := b.upload(good, "", "03:00"); code != 202 {
		t.Fatalf("update after the cut: HTTP %d %+v", code, e)
	}
	s = b.waitPhase("rebooting", 30*time.Second)
	at, err := time.Parse(time.RFC3339, s.State.RebootAt)
	if err != nil || at.Local().Format("15:04") != "03:00" || !at.After(time.Now()) {
		t.Fatalf("reboot_at %q, want the next 03:00 local", s.State.RebootAt)
	}
	if _, err := os.Stat(rig.rebooted); err == nil {
		t.Fatal("rebooted before 03:00")
	}
}

func TestUpdateConfigChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--update", "maybe"}, `--update "maybe": want rauc or off`},
		{[]string{"--update-healthy", "0s"}, `--update-healthy "0s"`},
		{[]string{"--update-healthy", "2m", "--update-deadline", "1m"}, `--update-deadline "1m0s": want a duration longer than update-healthy`},
		{[]string{"--reboot-command", " "}, `--reboot-command " ": want a command`},
	} {
		_, err := mohdCmd(t, "", append([]string{"run", "--data", t.TempDir(), "--output", "null"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
