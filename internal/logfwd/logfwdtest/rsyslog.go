// Package logfwdtest runs a real rsyslog for tests: a TLS (RFC 5425)
// listener on a loopback port that writes every message it receives,
// split into its RFC 5424 fields, to a file the test reads.
package logfwdtest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// Line is one received message, as rsyslog parsed it.
type Line struct {
	PRI, Version, Timestamp, Hostname, AppName, ProcID, MsgID, SD, Msg string
}

// Rsyslog is one rsyslogd, restartable on the same port.
type Rsyslog struct {
	Dir, Port, Out string
	conf           string
	cmd            *exec.Cmd
	done           chan struct{}
	log            *bytes.Buffer
}

// Binary is rsyslog's daemon (Debian: rsyslog); TLS needs its gtls
// driver (Debian: rsyslog-gnutls).
const Binary = "/usr/sbin/rsyslogd"

// Start runs rsyslogd in dir listening with TLS on a free loopback port,
// with the server certificate cert/key and accepting only clients with
// a certificate signed by ca.
func Start(dir, ca, cert, key string) (*Rsyslog, error) {
	p, err := testkit.FreePort()
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(p)
	r := &Rsyslog{Dir: dir, Port: port, Out: filepath.Join(dir, "received.log"), conf: filepath.Join(dir, "rsyslog.conf")}
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o755); err != nil {
		return nil, err
	}
	// One field per RFC 5424 part, '|' between them; the message last,
	// so a '|' inside it cannot shift the others.
	conf := fmt.Sprintf(`global(workDirectory=%q
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%q
  defaultNetstreamDriverCertFile=%q
  defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.Authmode="x509/certvalid")
input(type="imtcp" address="127.0.0.1" port=%q)
template(name="fields" type="string"
  string="%%pri%%|%%protocol-version%%|%%timereported:::date-rfc3339%%|%%hostname%%|%%app-name%%|%%procid%%|%%msgid%%|%%structured-data%%|%%msg%%\n")
*.* action(type="omfile" file=%q template="fields")
`, filepath.Join(dir, "work"), ca, cert, key, port, r.Out)
	if err := os.WriteFile(r.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return r, r.Restart()
}

// Addr is host:port of the listener.
func (r *Rsyslog) Addr() string { return "127.0.0.1:" + r.Port }

// Restart starts rsyslogd (again) and waits until it accepts.
func (r *Rsyslog) Restart() error {
	r.log = &bytes.Buffer{}
	cmd := exec.Command(Binary, "-n", "-f", r.conf, "-i", filepath.Join(r.Dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = r.log, r.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start rsyslogd (install rsyslog and rsyslog-gnutls): %w", err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return fmt.Errorf("rsyslogd exited: %s", r.log.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Stop()
	return fmt.Errorf("rsyslogd did not listen on %s: %s", r.Addr(), r.log.String())
}

// Stop ends rsyslogd (SIGTERM, as systemd would) and waits for it.
func (r *Rsyslog) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

// Log is what rsyslogd printed.
func (r *Rsyslog) Log() string {
	if r.log == nil {
		return ""
	}
	return r.log.String()
}

// Lines reads every message received so far.
func (r *Rsyslog) Lines() []Line {
	f, err := os.Open(r.Out)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p := strings.SplitN(sc.Text(), "|", 9)
		if len(p) != 9 {
			continue
		}
		// The SD field may itself hold a '|' in a value; moh's do not.
		out = append(out, Line{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]})
	}
	return out
}

// WaitFor polls Lines until ok holds or timeout passes; it returns the
// last lines read.
func (r *Rsyslog) WaitFor(timeout time.Duration, ok func([]Line) bool) ([]Line, bool) {
	deadline := time.Now().Add(timeout)
	for {
		l := r.Lines()
		if ok(l) {
			return l, true
		}
		if time.Now().After(deadline) {
			return l, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
