package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/logfwd"
	"github.com/mohproject/moh/internal/logfwd/logfwdtest"
	"github.com/mohproject/moh/internal/testkit"
)

// TestRsyslogExample: the shipped rsyslog config, with only its paths and
// port pointed at a temp dir, runs in a real rsyslogd, takes a box's
// messages over mutual TLS and files them under the box's device id; a
// client without a certificate is refused.
func TestRsyslogExample(t *testing.T) {
	dir := t.TempDir()
	ca := fleettest.MustCA(t, dir)
	sc, sk := ca.MustIssue(t, "localhost", true)
	raw, err := os.ReadFile("rsyslog/moh.conf")
	if err != nil {
		t.Fatal(err)
	}
	p, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(p)
	logDir := filepath.Join(dir, "log")
	conf := strings.NewReplacer(
		"/etc/moh/fleet-ca.pem", ca.CAFile,
		"/etc/rsyslog/tls/logs.pem", sc,
		"/etc/rsyslog/tls/logs.key", sk,
		`port="6514"`, `address="127.0.0.1" port="`+port+`"`,
		"/var/log/moh/", logDir+"/",
	).Replace(string(raw))
	for _, must := range []string{ca.CAFile, sc, sk, port, logDir} {
		if !strings.Contains(conf, must) {
			t.Fatalf("the example config changed: %s not substituted", must)
		}
	}
	os.MkdirAll(filepath.Join(dir, "work"), 0o755)
	conf = `global(workDirectory="` + filepath.Join(dir, "work") + `")` + "\n" + conf
	confFile := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(logfwdtest.Binary, "-N1", "-f", confFile).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1 rejects the example: %v\n%s", err, out)
	}
	var rlog strings.Builder
	cmd := exec.Command(logfwdtest.Binary, "-n", "-f", confFile, "-i", filepath.Join(dir, "pid"))
	cmd.Stdout, cmd.Stderr = &rlog, &rlog
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })

	send := func(device string, withCert bool) {
		t.Helper()
		c, k := "", ""
		if withCert {
			if c, k, err = ca.Issue(device, false); err != nil {
				t.Fatal(err)
			}
		}
		tc, err := fleet.TLSConfig(ca.CAFile, c, k)
		if err != nil {
			t.Fatal(err)
		}
		f, err := logfwd.New(logfwd.Options{URL: "tls://127.0.0.1:" + port, TLSConfig: tc, Hostname: device,
			Device: device, Site: "paris", Version: "1.0", MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		testkit.Go(t, f.Run)
		f.Send(logfwd.Message{Severity: logfwd.SevNotice, MsgID: "admin", Text: "stop from " + device})
	}
	send("box-1", true)
	send("intruder", false)

	file := filepath.Join(logDir, "box-1.log")
	var got string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(file)
		if got = string(b); strings.Contains(got, "stop from box-1") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := ` box-1 mohd[`
	if !strings.Contains(got, want) || !strings.Contains(got, `] admin [moh@32473 device="box-1" site="paris" version="1.0"] stop from box-1`) {
		t.Fatalf("%s holds %q; rsyslogd:\n%s", file, got, rlog.String())
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(logDir, "intruder.log")); err == nil {
		t.Fatal("a client without a certificate was logged")
	}
}
