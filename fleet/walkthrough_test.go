package fleet_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/internal/testkit"
)

// The README's walk-through: every shell block preceded by
// `<!-- walkthrough step NAME -->` (run to completion) or
// `<!-- walkthrough daemon NAME -->` (a long-running program) in
// fleet/README.md, in this order. A block added, removed or renamed in
// the README must be added here too, with a check of what it does.
var walkthroughOrder = []string{
	"step settings", "step certs", "step broker", "daemon mosquitto",
	"step box-files", "daemon box", "step inventory", "step status",
	"step volume", "step push",
}

type walkBlock struct {
	kind, name, body string
	line             int
}

var walkMarker = regexp.MustCompile(`^<!-- walkthrough (step|daemon) ([a-z0-9-]+) -->$`)

// walkthroughBlocks extracts the marked shell blocks of a README.
func walkthroughBlocks(readme string) ([]walkBlock, error) {
	lines := strings.Split(readme, "\n")
	var out []walkBlock
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "<!-- walkthrough ") {
			continue
		}
		m := walkMarker.FindStringSubmatch(l)
		if m == nil {
			return nil, fmt.Errorf("line %d: malformed marker %q", i+1, l)
		}
		if i+1 >= len(lines) || lines[i+1] != "```sh" {
			return nil, fmt.Errorf("line %d: marker %q is not followed by a ```sh block", i+1, l)
		}
		b := walkBlock{kind: m[1], name: m[2], line: i + 1}
		j := i + 2
		for ; j < len(lines) && lines[j] != "```"; j++ {
			b.body += lines[j] + "\n"
		}
		if j == len(lines) {
			return nil, fmt.Errorf("line %d: block %s never ends", i+1, b.name)
		}
		out = append(out, b)
		i = j
	}
	return out, nil
}

func TestWalkthroughBlocksParse(t *testing.T) {
	md := "text\n<!-- walkthrough step a -->\n```sh\necho 1\necho 2\n```\n" +
		"<!-- walkthrough daemon b -->\n```sh\nsleep 9\n```\n"
	got, err := walkthroughBlocks(md)
	if err != nil || len(got) != 2 || got[0].body != "echo 1\necho 2\n" || got[1].kind != "daemon" || got[1].name != "b" {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range []string{
		"<!-- walkthrough step a -->\n\n```sh\necho\n```\n", // the fence must follow at once
		"<!-- walkthrough step a -->\n```sh\necho\n",        // never closed
		"<!-- walkthrough stpe a -->\n```sh\necho\n```\n",   // a typo must not skip a block
	} {
		if _, err := walkthroughBlocks(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// walk is one run of the walk-through in a temp dir.
type walk struct {
	t       *testing.T
	ctx     context.Context
	blocks  map[string]walkBlock
	work    string // the operator's directory (certificates, inventory)
	env     []string
	mu      sync.Mutex
	daemons []*walkDaemon
}

// walkDaemon is a daemon block's shell; its output goes to the file log.
type walkDaemon struct {
	*testkit.Proc
	name string
	log  string
}

// script is what a reader pastes: the settings block, then the block.
func (w *walk) script(name string) string {
	b, ok := w.blocks[name]
	if !ok {
		w.t.Fatalf("README has no walk-through block %q", name)
	}
	return "set -eu -o pipefail\n" + w.blocks["step settings"].body + "\n" + b.body
}

// run runs a step block (or a command line after the settings) and
// returns its output and exit code.
func (w *walk) run(script string, extraEnv ...string) (stdout, stderr string, code int) {
	w.t.Helper()
	cmd := exec.CommandContext(w.ctx, "bash", "-c", script)
	cmd.Dir = w.work
	cmd.Env = append(slices.Clone(w.env), extraEnv...)
	// Out of time, the shell and whatever it started go together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		w.t.Fatalf("run %q: %v", script, err)
	}
	if w.ctx.Err() != nil {
		w.t.Fatalf("walk-through out of time in %q\nstdout:\n%s\nstderr:\n%s", script, o.String(), e.String())
	}
	return o.String(), e.String(), code
}

// step runs a step block and fails the test unless it exits with one of
// the codes (default 0).
func (w *walk) step(name string, codes []int, extraEnv ...string) (stdout, stderr string) {
	w.t.Helper()
	o, e, code := w.run(w.script("step "+name), extraEnv...)
	if codes == nil {
		codes = []int{0}
	}
	w.t.Logf("README step %s: exit %d\n%s%s", name, code, o, e)
	if !slices.Contains(codes, code) {
		w.t.Fatalf("README step %s (line %d) exited %d, want %v\nstdout:\n%s\nstderr:\n%s",
			name, w.blocks["step "+name].line, code, codes, o, e)
	}
	return o, e
}

// start starts a daemon block in its own process group, so that the
// program the shell runs can be killed with it like a box losing power.
func (w *walk) start(block, label string, extraEnv ...string) *walkDaemon {
	w.t.Helper()
	log := filepath.Join(w.work, "..", label+".log")
	f, err := os.Create(log)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("bash", "-c", w.script("daemon "+block))
	cmd.Dir = w.work
	cmd.Env = append(slices.Clone(w.env), extraEnv...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := testkit.Launch(cmd)
	if err != nil {
		w.t.Fatal(err)
	}
	d := &walkDaemon{Proc: p, name: label, log: log}
	w.mu.Lock()
	w.daemons = append(w.daemons, d)
	w.mu.Unlock()
	return d
}

// kill SIGKILLs the daemon's whole process group (the shell and the
// program it started) and waits for the shell.
func (d *walkDaemon) kill() {
	syscall.Kill(-d.Cmd.Process.Pid, syscall.SIGKILL)
	<-d.Done()
}

func (d *walkDaemon) output() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 6000 {
		b = append([]byte("…"), b[len(b)-6000:]...)
	}
	return string(b)
}

func waitUntil(t *testing.T, ctx context.Context, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// statusRow is the part of `mohctl status -o json` the walk-through checks.
type statusRow struct {
	Name     string    `json:"name"`
	OK       bool      `json:"ok"`
	Health   string    `json:"health"`
	State    string    `json:"state"`
	Track    string    `json:"track"`
	DiskFree *uint64   `json:"disk_free_bytes"`
	Version  string    `json:"version"`
	LastSeen time.Time `json:"last_seen"`
	Error    string    `json:"error"`
}

// tableColumn returns the cell of column col in the row of box in a
// `mohctl status` table: tabwriter pads every cell to its column's width
// (in runes), so a column starts at the same offset in each line as in
// the header and ends where the header's next column starts.
func tableColumn(table, box, col string) (string, bool) {
	lines := strings.Split(table, "\n")
	head := []rune(lines[0])
	i := strings.Index(lines[0], col)
	if i < 0 {
		return "", false
	}
	start := len([]rune(lines[0][:i]))
	end := start + len([]rune(col))
	for end < len(head) && head[end] == ' ' {
		end++
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) == 0 || f[0] != box {
			continue
		}
		r := []rune(l)
		if end == len(head) || end > len(r) {
			end = len(r)
		}
		if start >= len(r) {
			return "", true
		}
		return strings.TrimSpace(string(r[start:end])), true
	}
	return "", false
}

func TestTableColumn(t *testing.T) {
	table := "NAME     STATE    LAST SEEN  ERROR\n" +
		"paris-1  playing  now        \n" +
		"lyon-1   offline  3m0s ago   offline\n"
	for _, c := range []struct{ box, col, want string }{
		{"paris-1", "STATE", "playing"}, {"lyon-1", "LAST SEEN", "3m0s ago"},
		{"lyon-1", "ERROR", "offline"}, {"paris-1", "ERROR", ""},
	} {
		if got, ok := tableColumn(table, c.box, c.col); !ok || got != c.want {
			t.Errorf("%s %s = %q, %v; want %q", c.box, c.col, got, ok, c.want)
		}
	}
	if _, ok := tableColumn(table, "nice-1", "STATE"); ok {
		t.Error("found a row for a box not in the table")
	}
}

// TestREADMEWalkthrough follows fleet/README.md's MQTT walk-through as a
// reader would: the openssl commands, the broker files installed and
// mosquitto started as Debian runs it (as root, which drops to the
// mosquitto user before reading its key), two boxes running real mohd,
// and the operator's mohctl commands, against a file server whose
// certificate the walk-through's CA signed. Only the settings block's
// values differ: a temp dir and loopback ports.
func TestREADMEWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mohd and mohctl and runs the whole walk-through")
	}
	if os.Geteuid() != 0 {
		t.Skip("the walk-through installs the broker's key for the mosquitto group, as root does on a broker")
	}
	if _, err := user.Lookup("mosquitto"); err != nil {
		t.Skip("no mosquitto user (apt-get install mosquitto)")
	}
	for _, tool := range []string{"bash", "openssl", "sox", "lame"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
			t.Skip("mosquitto not installed (apt-get install mosquitto)")
		}
	}
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	list, err := walkthroughBlocks(string(raw))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	var names []string
	blocks := map[string]walkBlock{}
	for _, b := range list {
		names = append(names, b.kind+" "+b.name)
		blocks[b.kind+" "+b.name] = b
	}
	if !slices.Equal(names, walkthroughOrder) {
		t.Fatalf("README walk-through blocks are %q, the test knows %q: update the test with the README", names, walkthroughOrder)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// mosquitto runs as its own user: the walk-through's files must be
	// reachable by it, as /etc/mosquitto is.
	root := t.TempDir()
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin, libexec, work := filepath.Join(root, "bin"), filepath.Join(root, "libexec"), filepath.Join(root, "operator")
	for _, d := range []string{bin, libexec, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", libexec+"/",
		"github.com/mohproject/moh/cmd/mohd", "github.com/mohproject/moh/cmd/mohctl")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build mohd and mohctl: %v\n%s", err, out)
	}
	if err := os.Symlink(filepath.Join(libexec, "mohctl"), filepath.Join(bin, "mohctl")); err != nil {
		t.Fatal(err)
	}
	// An installed box keeps its data dir, HTTP address and sound card in
	// its config file; this wrapper gives each test box its own, after
	// the walk-through's flags.
	wrapper := "#!/bin/sh\nexec " + filepath.Join(libexec, "mohd") +
		` "$@" --data "$MOHD_DATA" --listen "$MOHD_LISTEN" --output null` + "\n"
	if err := os.WriteFile(filepath.Join(bin, "mohd"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}

	mqttPort, filesPort := testkit.MustFreePort(t), testkit.MustFreePort(t)
	settings := map[string]string{
		"BROKER":    "localhost",
		"MQTT_PORT": strconv.Itoa(mqttPort),
		"MQTT_ADDR": "127.0.0.1",
		"MOSQ":      filepath.Join(root, "etc", "mosquitto"),
		"FILES":     "localhost",
		"FILES_URL": "https://localhost:" + strconv.Itoa(filesPort),
		"MOH_USER":  "root", // this machine has no moh account; mohd runs as root here
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "BOX", "BOX_GROUPS", "BOXDIR", "VIA", "MOHCTL_INVENTORY", "PATH":
			continue
		}
		if _, ours := settings[k]; !ours {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+bin+":"+os.Getenv("PATH")+":/usr/sbin:/sbin")
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	w := &walk{t: t, ctx: ctx, blocks: blocks, work: work, env: env}
	t.Cleanup(func() {
		w.mu.Lock()
		ds := w.daemons
		w.mu.Unlock()
		for _, d := range ds {
			if !d.Exited() {
				d.kill()
			}
			if t.Failed() {
				t.Logf("%s log:\n%s", d.name, d.output())
			}
		}
	})

	// 3.1: the settings alone run and define what the other blocks use.
	if o, _ := w.step("settings", nil); o != "" {
		t.Fatalf("settings printed %q", o)
	}

	// 3.2: a CA, server certificates valid for the names clients dial,
	// client certificates with the device ids as CN.
	w.step("certs", nil)
	caPEM, err := os.ReadFile(filepath.Join(work, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	for _, c := range []struct {
		file, name string
		usage      x509.ExtKeyUsage
	}{
		{"broker", "localhost", x509.ExtKeyUsageServerAuth},
		{"files", "localhost", x509.ExtKeyUsageServerAuth},
		{"paris-1", "", x509.ExtKeyUsageClientAuth},
		{"lyon-1", "", x509.ExtKeyUsageClientAuth},
		{"operator", "", x509.ExtKeyUsageClientAuth},
	} {
		pair, err := tls.LoadX509KeyPair(filepath.Join(work, c.file+".pem"), filepath.Join(work, c.file+".key"))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: c.name, KeyUsages: []x509.ExtKeyUsage{c.usage}}); err != nil {
			t.Errorf("%s.pem: %v", c.file, err)
		}
		if c.name == "" && leaf.Subject.CommonName != c.file {
			t.Errorf("%s.pem: CN %q", c.file, leaf.Subject.CommonName)
		}
	}

	// 3.3: the broker's files, its key readable by the mosquitto group.
	w.step("broker", nil)
	mosq := settings["MOSQ"]
	key := filepath.Join(mosq, "moh", "broker.key")
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	grp, _ := user.LookupGroup("mosquitto")
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || fi.Mode().Perm() != 0o640 || grp == nil || strconv.Itoa(int(st.Gid)) != grp.Gid {
		t.Fatalf("broker key: mode %v, want 0640 and group mosquitto", fi.Mode())
	}
	// The trap the README warns of is real for the mosquitto this test
	// runs: with the key as openssl left it (root, 600), it will not start.
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	trap := w.start("mosquitto", "mosquitto-root-only-key")
	select {
	case <-trap.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("mosquitto started with a key only root can read: the test's broker is not dropping root as Debian's does")
	}
	if !strings.Contains(trap.output(), "Unable to load server key file") {
		t.Fatalf("mosquitto with a root-only key: %s", trap.output())
	}
	if err := os.Chmod(key, 0o640); err != nil {
		t.Fatal(err)
	}
	broker := w.start("mosquitto", "mosquitto")
	waitUntil(t, ctx, 15*time.Second, "mosquitto listening", func() bool {
		if broker.Exited() {
			t.Fatalf("mosquitto exited: %s", broker.output())
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(mqttPort), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	// 3.4: the boxes.
	type box struct {
		name, groups string
		started      time.Time
		d            *walkDaemon
	}
	boxes := []*box{{name: "paris-1", groups: "paris,floor-2"}, {name: "lyon-1", groups: "lyon"}}
	for _, b := range boxes {
		dir := filepath.Join(root, "box-"+b.name)
		boxEnv := []string{"BOX=" + b.name, "BOX_GROUPS=" + b.groups, "BOXDIR=" + filepath.Join(dir, "mqtt"),
			"MOHD_DATA=" + filepath.Join(dir, "data"), "MOHD_LISTEN=127.0.0.1:" + strconv.Itoa(testkit.MustFreePort(t))}
		w.step("box-files", nil, boxEnv...)
		for _, f := range []string{"ca.pem", b.name + ".pem", b.name + ".key"} {
			fi, err := os.Stat(filepath.Join(dir, "mqtt", f))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("box %s: %s: %v %v", b.name, f, fi, err)
			}
		}
		b.started = time.Now()
		b.d = w.start("box", "mohd-"+b.name, boxEnv...)
	}
	watcher := dialOperator(t, ctx, mqttPort, work)
	presence := func(dev string) fleet.StatusDoc {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		docs, _ := watcher.Statuses(sctx, []string{dev})
		return docs[dev]
	}
	for _, b := range boxes {
		waitUntil(t, ctx, 60*time.Second, b.name+" online on the broker", func() bool {
			if b.d.Exited() {
				t.Fatalf("mohd %s exited: %s", b.name, b.d.output())
			}
			return presence(b.name).Presence == fleet.Online
		})
	}

	// A box that just started is critical until it has heard its own
	// audio; the operator's first look comes after that. (A status with
	// no health verdict is judged by its state, by mohctl too.)
	health := func(dev string) string {
		var s struct {
			Health struct {
				State string `json:"state"`
			} `json:"health"`
		}
		json.Unmarshal(presence(dev).Status, &s)
		return s.Health.State
	}
	for _, b := range boxes {
		waitUntil(t, ctx, 60*time.Second, b.name+" verifies its audio", func() bool {
			return health(b.name) != "critical"
		})
	}

	// 3.5: the operator.
	w.step("inventory", nil)
	if fi, err := os.Stat(filepath.Join(work, "inventory.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("inventory.json: %v %v", fi, err)
	}
	// The exit status is the fleet's health; fresh boxes play the
	// built-in track, which is a warning.
	table, _ := w.step("status", []int{0, 1})
	for _, b := range boxes {
		state, ok := tableColumn(table, b.name, "STATE")
		if !ok || state != "playing" {
			t.Fatalf("status table: %s state %q, want playing:\n%s", b.name, state, table)
		}
	}
	rows := w.statusJSON()
	for _, b := range boxes {
		r := rows[b.name]
		if !r.OK || r.State != "playing" || r.LastSeen.IsZero() {
			t.Fatalf("status %s: %+v", b.name, r)
		}
		// The MQTT status must carry what HTTP shows (DISK, VERSION).
		if r.DiskFree == nil || r.Version == "" {
			t.Errorf("status over MQTT lacks DISK or VERSION for %s: %+v", b.name, r)
		}
	}

	volume := func(dev string) any {
		var s map[string]any
		json.Unmarshal(presence(dev).Status, &s)
		return s["volume"]
	}
	lyonVolume := volume("lyon-1")
	o, _ := w.step("volume", nil)
	if !regexp.MustCompile(`(?m)^paris-1\b.*\bok\b`).MatchString(o) || strings.Contains(o, "lyon-1") {
		t.Fatalf("volume output:\n%s", o)
	}
	waitUntil(t, ctx, 15*time.Second, "paris-1 reports volume 40", func() bool { return volume("paris-1") == float64(40) })
	if v := volume("lyon-1"); v != lyonVolume || v == float64(40) {
		t.Fatalf("lyon-1 (not in group paris) volume %v, was %v", v, lyonVolume)
	}

	// push --url: hold.mp3 on a file server whose certificate the
	// walk-through's CA signed (not a public one).
	if out, err := exec.CommandContext(ctx, "sox", "-n", "-r", "44100", "-c", "2", filepath.Join(root, "hold.wav"),
		"synth", "4", "sine", "440", "vol", "0.3").CombinedOutput(); err != nil {
		t.Fatalf("sox: %v %s", err, out)
	}
	if out, err := exec.CommandContext(ctx, "lame", "--quiet", "-b", "128", filepath.Join(root, "hold.wav"),
		filepath.Join(work, "hold.mp3")).CombinedOutput(); err != nil {
		t.Fatalf("lame: %v %s", err, out)
	}
	fetched := serveFiles(t, filesPort, work)
	o, _ = w.step("push", nil)
	if !regexp.MustCompile(`(?m)^paris-1\s+ok\s+added hold\.mp3 `).MatchString(o) ||
		!regexp.MustCompile(`(?m)^paris-1\s+ok\s+1\. hold\.mp3 `).MatchString(o) || strings.Contains(o, "lyon-1") {
		t.Fatalf("push output:\n%s", o)
	}
	if got := fetched(); got != 1 {
		t.Fatalf("file server served hold.mp3 %d times, want once (paris-1 only)", got)
	}

	// A box that dies (SIGKILL, like a power cut) shows as offline, and
	// when it was last up.
	lyon := boxes[1]
	lyon.d.kill()
	killed := time.Now()
	waitUntil(t, ctx, 60*time.Second, "lyon-1 offline by its last will", func() bool {
		return presence("lyon-1").Presence == fleet.Offline
	})
	will := presence("lyon-1")
	if will.Time.Before(lyon.started) || will.Time.After(killed) {
		t.Fatalf("last will time %v, want between the box's start %v and its death %v", will.Time, lyon.started, killed)
	}
	// LAST SEEN is the later of the last online status this mohctl read
	// (inventory.json.seen, from the status steps above) and the will's
	// time; without that memory, the will alone gives it.
	seenFile := filepath.Join(work, "inventory.json.seen")
	raw, err = os.ReadFile(seenFile)
	if err != nil {
		t.Fatal(err)
	}
	var seen map[string]time.Time
	if err := json.Unmarshal(raw, &seen); err != nil || seen["lyon-1"].IsZero() {
		t.Fatalf("inventory.json.seen has no time for lyon-1: %s %v", raw, err)
	}
	want := will.Time
	if seen["lyon-1"].After(want) {
		want = seen["lyon-1"]
	}
	rows = w.statusJSON()
	if r := rows["lyon-1"]; r.OK || r.State != "offline" || !r.LastSeen.Equal(want) {
		t.Fatalf("lyon-1 after its death: %+v, want last seen %v (remembered %v, will %v)", r, want, seen["lyon-1"], will.Time)
	}
	if err := os.Remove(seenFile); err != nil {
		t.Fatal(err)
	}
	rows = w.statusJSON()
	if r := rows["lyon-1"]; r.OK || r.State != "offline" || !r.LastSeen.Equal(will.Time) {
		t.Fatalf("lyon-1 after its death, nothing remembered: %+v, want last seen %v", r, will.Time)
	}
	if r := rows["paris-1"]; !r.OK || r.Track == "" {
		t.Fatalf("paris-1: %+v", r)
	}
	table, _ = w.step("status", []int{2})
	if state, _ := tableColumn(table, "lyon-1", "STATE"); state != "offline" {
		t.Fatalf("status table: lyon-1 state %q:\n%s", state, table)
	}
	if seen, _ := tableColumn(table, "lyon-1", "LAST SEEN"); !strings.HasSuffix(seen, " ago") && seen != "now" {
		t.Fatalf("status table: lyon-1 LAST SEEN %q, want a time:\n%s", seen, table)
	}
}

// statusJSON runs the status step's command with -o json.
func (w *walk) statusJSON() map[string]statusRow {
	w.t.Helper()
	o, e, code := w.run(strings.TrimRight(w.script("step status"), "\n") + " -o json")
	if code > 2 {
		w.t.Fatalf("status -o json exited %d: %s", code, e)
	}
	var rows []statusRow
	if err := json.Unmarshal([]byte(o), &rows); err != nil {
		w.t.Fatalf("status -o json: %v\n%s", err, o)
	}
	out := map[string]statusRow{}
	for _, r := range rows {
		out[r.Name] = r
	}
	return out
}

// dialOperator connects with the walk-through's operator certificate, to
// watch the retained status documents between steps.
func dialOperator(t *testing.T, ctx context.Context, port int, work string) *fleet.Client {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cl, err := fleet.Dial(dctx, fleet.ClientOptions{
		BrokerURL: "mqtts://localhost:" + strconv.Itoa(port),
		CAFile:    filepath.Join(work, "ca.pem"),
		CertFile:  filepath.Join(work, "operator.pem"), KeyFile: filepath.Join(work, "operator.key"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// serveFiles serves dir over HTTPS on a loopback port with the
// walk-through's files.pem and files.key, and counts the downloads.
func serveFiles(t *testing.T, port int, dir string) (count func() int) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "files.pem"), filepath.Join(dir, "files.key"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/hold.mp3" {
				http.NotFound(w, r)
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			files.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}
