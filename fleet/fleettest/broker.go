package fleettest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// Broker is a mosquitto process listening with mutual TLS on a free
// loopback port, with use_identity_as_username and an ACL file.
type Broker struct {
	Dir  string
	Port int
	CA   *CA
	conf string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    testkit.LockedBuffer
}

// mosquittoBin finds Debian's mosquitto, which lives in /usr/sbin (often
// not on a normal user's PATH).
func mosquittoBin() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
		return "", fmt.Errorf("mosquitto not installed (apt-get install mosquitto): %w", err)
	}
	return "/usr/sbin/mosquitto", nil
}

// MessageSizeLimit and MaxPacketSize are the broker limits moh documents
// (fleet/README.md; fleet.BrokerMessageLimit and fleet.BrokerPacketLimit,
// repeated here because fleet's own tests import this package and a test
// checks the two agree): a bigger publish is dropped, a bigger packet
// costs the sender its connection.
const (
	MessageSizeLimit = 1 << 20
	MaxPacketSize    = 2 << 20
)

// ACL is the rule set moh documents: a device reads its own and its
// groups' command topics and writes its status, replies and events; the
// operator writes every command topic and reads every status, reply and
// event. groups
// maps a device id to its groups.
func ACL(groups map[string][]string) string {
	var b strings.Builder
	b.WriteString("# patterns apply to every client; %u is the certificate CN\n")
	b.WriteString("pattern read moh/%u/cmd\n")
	b.WriteString("pattern write moh/%u/status\n")
	b.WriteString("pattern write moh/%u/reply/#\n")
	b.WriteString("pattern write moh/%u/events\n\n")
	b.WriteString("user operator\n")
	b.WriteString("topic write moh/+/cmd\n")
	b.WriteString("topic write moh/group/+/cmd\n")
	b.WriteString("topic read moh/+/status\n")
	b.WriteString("topic read moh/+/reply/#\n")
	b.WriteString("topic read moh/+/events\n")
	for dev, gs := range groups {
		if len(gs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\nuser %s\n", dev)
		for _, g := range gs {
			fmt.Fprintf(&b, "topic read moh/group/%s/cmd\n", g)
		}
	}
	return b.String()
}

// StartBroker writes a config and ACL under dir (the broker's cert is
// issued by ca) and starts mosquitto, waiting until it accepts TCP.
func StartBroker(dir string, ca *CA, acl string) (*Broker, error) {
	cert, key, err := ca.Issue("broker", true)
	if err != nil {
		return nil, err
	}
	aclFile := filepath.Join(dir, "acl")
	if err := os.WriteFile(aclFile, []byte(acl), 0o600); err != nil {
		return nil, err
	}
	b, err := StartBrokerFiles(dir, BrokerFiles{CAFile: ca.CAFile, CertFile: cert, KeyFile: key, ACLFile: aclFile})
	if b != nil {
		b.CA = ca
	}
	return b, err
}

// BrokerFiles are what a broker trusts and presents: a CA other than
// fleettest's (the operator's own, made by mohctl ca init) goes here.
type BrokerFiles struct {
	CAFile, CertFile, KeyFile, ACLFile string
	// CRLFile, if set, makes mosquitto refuse revoked client
	// certificates; it rereads the file on SIGHUP (Broker.HUP).
	CRLFile string
}

// StartBrokerFiles writes a config under dir with the limits moh
// documents and starts mosquitto on a free port with f, waiting until it
// accepts TCP.
func StartBrokerFiles(dir string, f BrokerFiles) (*Broker, error) {
	if _, err := mosquittoBin(); err != nil {
		return nil, err
	}
	port, err := testkit.FreePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	c := fmt.Sprintf(`per_listener_settings false
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
max_keepalive 120
message_size_limit %d
max_packet_size %d
listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate true
use_identity_as_username true
allow_anonymous false
acl_file %s
`, MessageSizeLimit, MaxPacketSize, port, f.CAFile, f.CertFile, f.KeyFile, f.ACLFile)
	if f.CRLFile != "" {
		c += "crlfile " + f.CRLFile + "\n"
	}
	if os.Geteuid() == 0 {
		// As root mosquitto would switch to the mosquitto user, which
		// cannot read the test's private temp dir.
		c = "user root\n" + c
	}
	if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
		return nil, err
	}
	b := &Broker{Dir: dir, Port: port, conf: conf}
	if err := b.Start(); err != nil {
		return nil, err
	}
	return b, nil
}

// URL is the broker's mqtts:// address.
func (b *Broker) URL() string { return "mqtts://127.0.0.1:" + strconv.Itoa(b.Port) }

// Start (re)starts mosquitto on the same port and waits until it listens.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bin, err := mosquittoBin()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "-c", b.conf)
	b.log.Reset()
	cmd.Stdout, cmd.Stderr = &b.log, &b.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mosquitto: %w", err)
	}
	b.cmd = cmd
	b.exited = make(chan struct{})
	go func(ch chan struct{}) { cmd.Wait(); close(ch) }(b.exited)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-b.exited:
			return fmt.Errorf("mosquitto exited at start: %s", b.Log())
		default:
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.Port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("mosquitto did not listen on %d within 10s", b.Port)
}

// Stop kills mosquitto (SIGKILL: the clients see the link drop, as in a
// crash) and waits for it to exit.
func (b *Broker) Stop() {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// PID is the running mosquitto's process id.
func (b *Broker) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd.Process.Pid
}

// Log is what mosquitto printed since it last started.
func (b *Broker) Log() string { return b.log.String() }

// HUP asks mosquitto to reread its files (the CRL), as an operator's
// `systemctl reload mosquitto` does.
func (b *Broker) HUP() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd.Process.Signal(syscall.SIGHUP)
}

// RSSKiB is mosquitto's resident memory.
func (b *Broker) RSSKiB() (int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.PID()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}
