package sip

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"github.com/mohproject/moh/internal/phone"
)

// Addresses of the test's private network: the server and allowed
// callers on .1, a caller outside the allow-list on .2.
const (
	hostIP  = "10.99.0.1"
	otherIP = "10.99.0.2"
	toneHz  = 441.0
)

// TestMain runs the package's tests in a network namespace of their own
// (re-executing the test binary with CLONE_NEWNET), so no SIP or RTP
// packet leaves the machine, with a veth pair because baresip will not
// use lo.
func TestMain(m *testing.M) {
	if os.Getenv("MOH_SIP_NETNS") != "1" {
		if os.Geteuid() != 0 {
			fmt.Fprintln(os.Stderr, "internal/sip tests need root to make their own network namespace")
			os.Exit(1)
		}
		cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
		cmd.Env = append(os.Environ(), "MOH_SIP_NETNS=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				os.Exit(ee.ExitCode())
			}
			fmt.Fprintln(os.Stderr, "re-exec in a network namespace:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "d0", "type", "veth", "peer", "name", "d1"},
		{"addr", "add", hostIP + "/24", "dev", "d0"},
		{"addr", "add", otherIP + "/24", "dev", "d1"},
		{"link", "set", "d0", "up"},
		{"link", "set", "d1", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "ip %s: %v\n%s", strings.Join(args, " "), err, out)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// feedTone publishes a continuous 441 Hz tone into hub every 20 ms until
// ctx ends, paced as the player's converter is: frame n is due at
// t0 + n·20 ms, and a late wake-up is made up at once (a Ticker would
// drop ticks on a loaded machine, and with them audio).
func feedTone(ctx context.Context, hub *phone.Hub) {
	t0 := time.Now()
	var n int
	for frame := 0; ; frame++ {
		if d := time.Until(t0.Add(time.Duration(frame) * phone.FrameDuration)); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			return
		}
		f := &phone.Frame{}
		for i := range f.PCM {
			v := int16(8000 * math.Sin(2*math.Pi*toneHz*float64(n)/phone.SampleRate))
			n++
			f.PCM[i] = v
			f.ULaw[i] = g711.EncodeUlawFrame(v)
			f.ALaw[i] = g711.EncodeAlawFrame(v)
		}
		hub.Publish(f)
	}
}

type testServer struct {
	*Server
	addr string
}

// uri is the request URI of a call to the server.
func (s *testServer) uri() sip.Uri {
	var u sip.Uri
	sip.ParseUri("sip:moh@"+s.addr, &u)
	return u
}

// startServer runs a Server on hostIP:port fed with the tone.
func startServer(t testing.TB, port int, mod func(*Options)) *testServer {
	t.Helper()
	hub := phone.NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	go feedTone(ctx, hub)
	allow, _ := ParseAllow([]string{hostIP + "/32", "127.0.0.1"})
	o := Options{Addr: fmt.Sprintf("%s:%d", hostIP, port), Hub: hub, Allow: allow,
		RTPMin: 10000 + port%100*200, RTPMax: 10000 + port%100*200 + 199} // below the ephemeral ports the callers bind
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(5 * time.Second)
	for s.Status().State != "listening" {
		if time.Now().After(deadline) {
			t.Fatalf("server never listened: %+v", s.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &testServer{Server: s, addr: o.Addr}
}

// caller is a sipgo user agent that calls the server and receives its
// RTP on a socket of its own.
type caller struct {
	ua   *sipgo.UserAgent
	dua  *sipgo.DialogUA
	rtp  *net.UDPConn
	sess *sipgo.DialogClientSession

	mu   sync.Mutex
	pkts []rtp.Packet
	at   []time.Time // arrival of each packet
	from map[string]int
}

func newCaller(t testing.TB, ip string) *caller { return newCallerReading(t, ip, true) }

// newCallerReading makes a caller that, unless read, never reads its RTP
// socket: the kernel drops what overflows, so a benchmark's receivers
// cost the process nothing.
func newCallerReading(t testing.TB, ip string, read bool) *caller {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("moh-test"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := sipgo.NewClient(ua, sipgo.WithClientHostname(ip), sipgo.WithClientConnectionAddr(ip+":0"))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	c := &caller{ua: ua, rtp: rc, from: map[string]int{},
		dua: &sipgo.DialogUA{Client: cl, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "pbx", Host: ip, Port: 5099}}}}
	if read {
		go c.read()
	} else {
		// The kernel's smallest receive buffer overflows at the first
		// packets; from then on each is dropped on arrival, without the
		// wake-up of Go's poller a queued packet costs.
		rc.SetReadBuffer(1)
	}
	t.Cleanup(func() { rc.Close(); ua.Close() })
	return c
}

func (c *caller) read() {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.rtp.ReadFromUDP(buf)
		if err != nil {
			return
		}
		var p rtp.Packet
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		p.Payload = append([]byte(nil), p.Payload...)
		c.mu.Lock()
		c.pkts = append(c.pkts, p)
		c.at = append(c.at, time.Now())
		c.from[from.String()]++
		c.mu.Unlock()
	}
}

func (c *caller) packets() []rtp.Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rtp.Packet(nil), c.pkts...)
}

// offerSDP offers the caller's RTP socket with the given formats.
func offerSDP(ip string, port int, dir string, formats ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=pbx 1 1 IN IP4 %s\r\ns=call\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n",
		ip, ip, port, strings.Join(formats, " "))
	for _, f := range formats {
		switch f {
		case "0":
			b.WriteString("a=rtpmap:0 PCMU/8000\r\n")
		case "8":
			b.WriteString("a=rtpmap:8 PCMA/8000\r\n")
		case "9":
			b.WriteString("a=rtpmap:9 G722/8000\r\n")
		case "18":
			b.WriteString("a=rtpmap:18 G729/8000\r\n")
		}
	}
	if dir != "" {
		b.WriteString("a=" + dir + "\r\n")
	}
	return []byte(b.String())
}

// lateness returns, for each packet, how far it arrived after its slot
// on a 20 ms grid anchored at the earliest packet (so it is never
// negative): the packet-timing jitter a receiver sees.
func (c *caller) lateness() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.at) == 0 {
		return nil
	}
	offs := make([]time.Duration, len(c.at))
	best := time.Duration(math.MaxInt64)
	for i, t := range c.at {
		offs[i] = t.Sub(c.at[0]) - time.Duration(i)*phone.FrameDuration
		best = min(best, offs[i])
	}
	for i := range offs {
		offs[i] -= best
	}
	return offs
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func (c *caller) port() int { return c.rtp.LocalAddr().(*net.UDPAddr).Port }

// invite calls srv and returns the final status (200 after ACK).
func (c *caller) invite(ctx context.Context, srv string, body []byte, hdrs ...sip.Header) (int, error) {
	var uri sip.Uri
	if err := sip.ParseUri("sip:moh@"+srv, &uri); err != nil {
		return 0, err
	}
	sess, err := c.dua.Invite(ctx, uri, body, append([]sip.Header{sip.NewHeader("Content-Type", "application/sdp")}, hdrs...)...)
	if err != nil {
		return 0, err
	}
	c.sess = sess
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		if e, ok := err.(*sipgo.ErrDialogResponse); ok {
			return e.Res.StatusCode, nil
		}
		if sess.InviteResponse != nil && !sess.InviteResponse.IsProvisional() {
			return sess.InviteResponse.StatusCode, nil
		}
		return 0, err
	}
	if err := sess.Ack(ctx); err != nil {
		return 0, err
	}
	return sess.InviteResponse.StatusCode, nil
}

// reinvite sends a new offer in the dialog and ACKs the answer.
func (c *caller) reinvite(ctx context.Context, body []byte) (*sip.Response, error) {
	req := sip.NewRequest(sip.INVITE, c.sess.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	res, err := c.sess.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	ack := sip.NewRequest(sip.ACK, c.sess.InviteResponse.Contact().Address)
	return res, c.sess.WriteRequest(ack)
}

func (c *caller) bye(ctx context.Context) error { return c.sess.Bye(ctx) }

// toneFreq measures the frequency of pcm by interpolated zero crossings:
// over seconds of signal its error is far below the 2 Hz asked.
func toneFreq(pcm []int16, rate float64) float64 {
	var first, last float64
	n := 0
	for i := 1; i < len(pcm); i++ {
		a, b := float64(pcm[i-1]), float64(pcm[i])
		if a < 0 && b >= 0 {
			x := float64(i-1) + a/(a-b)
			if n == 0 {
				first = x
			}
			last = x
			n++
		}
	}
	if n < 2 {
		return 0
	}
	return float64(n-1) * rate / (last - first)
}

// longestQuiet is the longest run of samples below a tenth of the tone's
// amplitude: a gap in the stream shows as such a run.
func longestQuiet(pcm []int16) int {
	run, best := 0, 0
	for _, v := range pcm {
		if v < 800 && v > -800 {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}

func decode(pkts []rtp.Packet) []int16 {
	var out []int16
	for _, p := range pkts {
		for _, b := range p.Payload {
			if p.PayloadType == ptPCMA {
				out = append(out, g711.DecodeAlawFrame(b))
			} else {
				out = append(out, g711.DecodeUlawFrame(b))
			}
		}
	}
	return out
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
