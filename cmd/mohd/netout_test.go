package main

import (
	"bytes"
	"encoding/json"
	"math"
	"math/cmplx"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mohproject/moh/internal/testkit"
	"github.com/pion/rtp"
	"github.com/zaf/g711"
)

// The RTP multicast acceptance test runs in a network namespace of its
// own, so no packet leaves the machine: the test re-executes itself with
// CLONE_NEWNET (root), and the child brings up lo with a multicast route,
// runs a real mohd with `--output null,rtp:239.1.1.1:16384` playing a
// 441 Hz loop, joins the group on 127.0.0.1 and decodes 10 s.
const netnsChildEnv = "MOH_TEST_NETNS_CHILD"

func TestRTPMulticastInNetns(t *testing.T) {
	for _, codec := range []string{"pcmu", "pcma"} {
		t.Run(codec, func(t *testing.T) {
			if os.Getenv(netnsChildEnv) != "" {
				rtpMulticastChild(t, codec)
				return
			}
			runInNetns(t, "TestRTPMulticastInNetns/"+codec)
		})
	}
}

// runInNetns runs this test binary's test named run in a new network
// namespace and fails with its output if it fails.
func runInNetns(t *testing.T, run string) {
	cmd := exec.Command(os.Args[0], "-test.run", "^"+strings.ReplaceAll(run, "/", "$/^")+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), netnsChildEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "netout_test.go") {
			t.Log(strings.TrimSpace(l))
		}
	}
	if err != nil {
		t.Fatalf("in a new network namespace (needs root): %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+run) {
		t.Fatalf("the child did not run %s:\n%s", run, out)
	}
}

func rtpMulticastChild(t *testing.T, codec string) {
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"route", "add", "224.0.0.0/4", "dev", "lo"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	data := loop441Data(t)
	tokOut := createToken(t, data, "read")
	c := &apiClient{token: tokOut, hc: &http.Client{Timeout: 5 * time.Second}}

	// The receiver joins before mohd starts, so it sees the stream's
	// first packet too.
	group := &net.UDPAddr{IP: net.IPv4(239, 1, 1, 1), Port: 16384}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenMulticastUDP("udp4", lo, group)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadBuffer(1 << 20)
	// The kernel stamps each packet as it arrives (SO_TIMESTAMPNS), so the
	// timing measured is the sender's, not this goroutine's scheduling.
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1) })
	if serr != nil {
		t.Fatal(serr)
	}

	addr := testkit.FreeAddr(t)
	c.base = "http://" + addr
	spec := "null,rtp:239.1.1.1:16384"
	if codec == "pcma" {
		spec += "?codec=pcma"
	}
	// At nice -10, as the appliance's unit runs it (Nice=-10): this
	// machine's other tests saturate both cores.
	d := &mohdProc{Proc: testkit.Start(t, exec.Command("nice", "-n", "-10", mohdBin, "run", "--data", data, "--listen", addr, "--output", spec)), addr: addr}
	waitTrack(t, c, d, "loop441")

	// Packets from now on; the first second may still carry the seam from
	// the built-in track to the loop, so 1 s is dropped before 10 s are
	// measured.
	type pkt struct {
		at time.Time
		p  rtp.Packet
	}
	var pkts []pkt
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	// What queued while mohd started (the built-in track, the switch to
	// the loop) is not measured.
	for {
		conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, _, _, _, err := conn.ReadMsgUDP(buf, oob); err != nil {
			break
		}
	}
	for len(pkts) < 650 {
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, oobn, _, _, err := conn.ReadMsgUDP(buf, oob)
		if err != nil {
			t.Fatalf("after %d packets: %v\n%s", len(pkts), err, d.Log)
		}
		at := kernelStamp(t, oob[:oobn])
		var p rtp.Packet
		if err := p.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, pkt{at, p})
	}
	pkts = pkts[150:] // the first 3 s: the converter FIFO may still carry the start-up switch from the built-in track

	wantPT := uint8(0)
	if codec == "pcma" {
		wantPT = 8
	}
	var pcm []float64
	gaps := 0
	for i, k := range pkts {
		p := k.p
		if p.PayloadType != wantPT || len(p.Payload) != 160 || p.Version != 2 {
			t.Fatalf("packet %d: PT %d, %d bytes, version %d", i, p.PayloadType, len(p.Payload), p.Version)
		}
		if p.Marker {
			t.Fatalf("packet %d: marker bit mid-stream", i)
		}
		if i > 0 {
			q := pkts[i-1].p
			if p.SSRC != q.SSRC {
				t.Fatalf("packet %d: SSRC %#x after %#x", i, p.SSRC, q.SSRC)
			}
			if p.SequenceNumber != q.SequenceNumber+1 || p.Timestamp != q.Timestamp+160 {
				gaps++
			}
		}
		for _, b := range p.Payload {
			var v int16
			if codec == "pcma" {
				v = g711.DecodeAlawFrame(b)
			} else {
				v = g711.DecodeUlawFrame(b)
			}
			pcm = append(pcm, float64(v))
		}
	}
	if gaps != 0 {
		t.Fatalf("%d sequence gaps in %d packets", gaps, len(pkts))
	}

	// Timing: packet n is due at t0 + n·20 ms; t0 is the median offset,
	// so one late first packet does not shift the schedule.
	offs := make([]float64, len(pkts))
	for i, k := range pkts {
		offs[i] = float64(k.at.Sub(pkts[0].at) - time.Duration(i)*20*time.Millisecond)
	}
	sorted := append([]float64(nil), offs...)
	sort.Float64s(sorted)
	t0 := sorted[len(sorted)/2]
	var dev, ia []float64
	for i, o := range offs {
		dev = append(dev, math.Abs(o-t0))
		if i > 0 {
			ia = append(ia, math.Abs(float64(pkts[i].at.Sub(pkts[i-1].at))-float64(20*time.Millisecond)))
		}
	}
	sort.Float64s(dev)
	sort.Float64s(ia)
	p := func(x []float64, q float64) time.Duration { return time.Duration(x[int(float64(len(x)-1)*q)]) }
	t.Logf("%s: %d packets over %v; off schedule p50 %v p99 %v max %v; inter-arrival off 20 ms p50 %v p99 %v max %v",
		codec, len(pkts), pkts[len(pkts)-1].at.Sub(pkts[0].at).Round(time.Millisecond),
		p(dev, 0.5), p(dev, 0.99), p(dev, 1), p(ia, 0.5), p(ia, 0.99), p(ia, 1))
	var burst, silent []int
	for i := 1; i < len(pkts); i++ {
		if pkts[i].at.Sub(pkts[i-1].at) < 5*time.Millisecond {
			burst = append(burst, i)
		}
		if bytes.Count(pkts[i].p.Payload, pkts[i].p.Payload[:1]) == 160 {
			silent = append(silent, i)
		}
	}
	if len(silent) > 0 {
		t.Errorf("packets %v carry a constant payload (silence) in the middle of the loop", silent)
	}
	t.Logf("%d packets came less than 5 ms after the one before (catching up after a late one)", len(burst))
	// The 5 ms target is a speed figure: make bench checks it on a quiet
	// machine (MOH_RTP_P99_MS=5). Beside the rest of make test on two
	// cores the bound only catches a pacing defect — drift, or bursts
	// like ffmpeg's (p99 230 ms) — not the scheduler's bad moments.
	limit := 50 * time.Millisecond
	if v, err := strconv.Atoi(os.Getenv("MOH_RTP_P99_MS")); err == nil && v > 0 {
		limit = time.Duration(v) * time.Millisecond
	}
	if p(dev, 0.99) > limit {
		t.Errorf("packet timing p99 %v off schedule, want within %v", p(dev, 0.99), limit)
	}

	checkSine441(t, pcm)
}

// checkSine441 checks 10 s of 8 kHz audio is one continuous 441 Hz sine:
// the frequency, then for every 20 ms block its amplitude and phase
// against one reference sine. A gap, a repeated or lost block, or a click
// at a loop point moves the phase or the amplitude of a block.
func checkSine441(t *testing.T, x []float64) {
	t.Helper()
	// Each 20 ms block is fitted with a·cos + b·sin at 441 Hz (least
	// squares, exact for a pure sine whatever the block length); a
	// continuous sine has the same amplitude and phase in every block.
	const n = 160
	w := 2 * math.Pi * 441 / 8000
	var zs []complex128
	for b := 0; b+n <= len(x); b += n {
		var cc, cs, ss, xc, xs float64
		for i := range n {
			k := float64(b + i)
			c, s := math.Cos(w*k), math.Sin(w*k)
			cc += c * c
			cs += c * s
			ss += s * s
			xc += x[b+i] * c
			xs += x[b+i] * s
		}
		det := cc*ss - cs*cs
		a := (xc*ss - xs*cs) / det
		bb := (xs*cc - xc*cs) / det
		zs = append(zs, complex(a, -bb))
	}
	var amps []float64
	for _, z := range zs {
		amps = append(amps, cmplx.Abs(z))
	}
	med := append([]float64(nil), amps...)
	sort.Float64s(med)
	amp := med[len(med)/2]
	rmsDBm0 := 20*math.Log10(amp/32767) + 3.17
	// The phase drifts per block if the frequency is off from 441 Hz.
	// A click or gap changes a block against the one before; the level
	// stage's slow glide (it still settles on the loop after the built-in
	// track) does not.
	var sumd, worstPhase, worstStep, worstAmp float64
	for i := 1; i < len(zs); i++ {
		dp := cmplx.Phase(zs[i] / zs[i-1])
		sumd += dp
		worstPhase = math.Max(worstPhase, math.Abs(dp))
		worstStep = math.Max(worstStep, math.Abs(20*math.Log10(amps[i]/amps[i-1])))
	}
	for _, a := range amps {
		worstAmp = math.Max(worstAmp, math.Abs(20*math.Log10(a/amp)))
	}
	hz := 441 + sumd/float64(len(zs)-1)/(2*math.Pi)*(8000.0/n)
	t.Logf("tone %.3f Hz at %.2f dBm0; worst block to block: phase step %.4f rad, level step %.3f dB; level within %.2f dB of the median", hz, rmsDBm0, worstPhase, worstStep, worstAmp)
	if math.Abs(hz-441) > 0.5 {
		t.Errorf("tone at %.3f Hz, want 441", hz)
	}
	if math.Abs(rmsDBm0+19) > 1 {
		t.Errorf("level %.2f dBm0, want -19 ± 1", rmsDBm0)
	}
	// One lost or extra sample moves the phase by 0.35 rad; G.711 noise
	// moves it by well under 0.05.
	if worstPhase > 0.1 {
		t.Errorf("phase jumps %.3f rad between two blocks: a gap or click", worstPhase)
	}
	if worstStep > 0.3 {
		t.Errorf("the level jumps %.2f dB from one block to the next: a gap or click", worstStep)
	}
	if worstAmp > 2 {
		t.Errorf("a block's level is %.2f dB off the rest", worstAmp)
	}
}

// kernelStamp reads the SO_TIMESTAMPNS control message.
func kernelStamp(t *testing.T, oob []byte) time.Time {
	t.Helper()
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			ts := (*syscall.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix())
		}
	}
	t.Fatal("no kernel timestamp on the packet")
	return time.Time{}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// waitTrack waits until mohd plays the track named name, with its
// outputs reported ok.
func waitTrack(t *testing.T, c *apiClient, d *mohdProc, name string) {
	t.Helper()
	pollStatus(t, c, d, "play "+name+" with every output ok", func(raw json.RawMessage) bool {
		var st struct {
			State string `json:"state"`
			Track *struct {
				Name string `json:"name"`
			} `json:"track"`
			Outputs []struct {
				Kind, State string
			} `json:"outputs"`
		}
		if json.Unmarshal(raw, &st) != nil || st.State != "playing" || st.Track == nil || !strings.Contains(st.Track.Name, name) {
			return false
		}
		ok := len(st.Outputs) == 2
		for _, o := range st.Outputs {
			ok = ok && o.State == "ok"
		}
		return ok
	})
}

// pollStatus polls mohd's status until ok accepts it, for up to 60 s;
// mohd exiting ends the test at once, with its log.
func pollStatus(t *testing.T, c *apiClient, d *mohdProc, what string, ok func(json.RawMessage) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last []byte
	for time.Now().Before(deadline) {
		if d.Exited() {
			t.Fatalf("mohd exited early:\n%s", d.Log)
		}
		var raw json.RawMessage
		if code, err := c.do("GET", "/api/v1/status", nil, &raw); err == nil && code == 200 {
			last = raw
			if ok(raw) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("mohd did not %s within 60 s; last status %s\n%s", what, last, d.Log)
}

func TestCheckOutputs(t *testing.T) {
	for _, tc := range []struct {
		backend, output string
		level           float64
		want            string // "" for valid
	}{
		{"direct", "null,rtp:239.1.1.1:16384,sip", -19, ""},
		{"direct", "rtp:239.1.1.1:16384", -19, ""},
		{"mpd", "alsa", -19, ""},
		{"mpd", "null,rtp:239.1.1.1:16384", -19, "the rtp output needs --backend direct"},
		{"mpd", "sip", -19, "the sip output needs --backend direct"},
		{"direct", "alsa,null", -19, "only one of alsa, file and null"},
		{"direct", "null,null", -19, "listed twice"},
		{"direct", "rtp:239.1.1.1:16384?codec=opus", -19, `codec "opus"`},
		{"direct", "null", -5, `--phone-level "-5": want an active level from -40 to -6 dBm0`},
		{"direct", "null", math.NaN(), "--phone-level"},
	} {
		c := &config{Backend: tc.backend, Output: tc.output, PhoneLevel: tc.level}
		err := c.checkOutputs()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s %s: %v", tc.backend, tc.output, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s %v: err = %v, want %q", tc.backend, tc.output, tc.level, err, tc.want)
		}
	}
}
