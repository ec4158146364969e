package sip

// The tests here run real programs against the server: baresip as the
// PBX, and the real daemon serving SIP beside its other outputs.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
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

// TestBaresipCallsAndRecords has a real SIP client, baresip, play the
// PBX: it dials moh, records what it hears to a WAV and hangs up when it
// quits. The recording must carry the 441 Hz tone without a gap, and moh
// must have seen the ACK and the BYE.
func TestBaresipCallsAndRecords(t *testing.T) {
	bin, err := exec.LookPath("baresip")
	if err != nil {
		t.Fatal("baresip is not installed (Debian: apt-get install baresip)")
	}
	srv := startServer(t, 5060, nil)
	dir := t.TempDir()
	src, rec := filepath.Join(dir, "src.wav"), filepath.Join(dir, "rec.wav")
	// baresip sends this; moh only counts it as a sign of life.
	if err := os.WriteFile(src, wav(make([]int16, 8000*10)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Debian 12's baresip 1.0 has no file player, and on a sendonly
	// answer it drops its receive filters (src/audio.c resets them for
	// any direction but sendrecv), so its sndfile recorder hears nothing.
	// It plays the call into a PulseAudio null sink instead, paced in
	// real time like a sound card, and parec records the sink's monitor.
	pulse := startPulse(t, dir)
	parec := exec.Command("parec", "-d", "moh.monitor", "--rate=8000", "--channels=1", "--format=s16le",
		"--file-format=wav", rec)
	parec.Env = append(os.Environ(), "PULSE_SERVER="+pulse)
	parec.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var parecLog testkit.LockedBuffer
	parec.Stderr = &parecLog
	if err := parec.Start(); err != nil {
		t.Fatal(err)
	}
	parecDone := make(chan struct{})
	go func() { parec.Wait(); close(parecDone) }()
	defer func() { parec.Process.Kill(); <-parecDone }()
	conf := strings.Join([]string{
		"sip_listen " + hostIP + ":5062",
		"net_interface d0",
		"audio_source aufile," + src,
		"audio_player pulse,moh",
		// A jitter buffer as a PBX has one (5-10 frames), so a test
		// machine's scheduling hiccups are not heard as gaps.
		"jitter_buffer_delay 10-25",
		"audio_buffer 160-400",
		"module_path /usr/lib/baresip/modules",
		"module g711.so", "module aufile.so", "module pulse.so", "module account.so", "module menu.so",
		"",
	}, "\n")
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	acct := "<sip:pbx@" + hostIP + ":5062>;regint=0;audio_codecs=PCMU,PCMA\n"
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(acct), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", dir, "-t", "10", "-e", "/dial sip:moh@"+srv.addr)
	// baresip asks PulseAudio for one packet (20 ms) of buffer, so any
	// hiccup of a loaded test machine would be an underrun in the
	// recording; 400 ms absorbs them.
	cmd.Env = append(os.Environ(), "PULSE_SERVER="+pulse, "PULSE_LATENCY_MSEC=400")
	var logb testkit.LockedBuffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("baresip said:\n%s", logb.String())
		}
	})
	var confirmed bool
	var media string
	waitFor(t, "baresip's call", 4*time.Second, func() bool {
		st := srv.Status()
		if st.Active == 1 {
			confirmed, media = st.Calls[0].Confirmed, st.Calls[0].Media
		}
		return st.Active == 1 && confirmed
	})
	// A second caller beside baresip gets the same fan-out: its packet
	// timing says whether a gap in the recording left moh late.
	probe := newCaller(t, hostIP)
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pcancel()
	if code, err := probe.invite(pctx, srv.addr, offerSDP(hostIP, probe.port(), "", "0")); err != nil || code != 200 {
		t.Fatalf("probe INVITE: %d %v", code, err)
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("baresip did not quit")
	}
	late := probe.lateness()
	t.Logf("moh's packets to the probe beside baresip: %d, lateness p50 %s p99 %s max %s",
		len(late), percentile(late, .5), percentile(late, .99), percentile(late, 1))
	probe.bye(pctx)
	// The hang-up reached moh as BYE: the call is gone long before the
	// RTP timeout could have ended it.
	waitFor(t, "the BYE to end the call", 2*time.Second, func() bool { return srv.Status().Active == 0 })
	if !strings.HasPrefix(media, hostIP+":") {
		t.Errorf("media sent to %q", media)
	}
	// SIGINT makes parec finish the WAV header.
	parec.Process.Signal(os.Interrupt)
	select {
	case <-parecDone:
	case <-time.After(5 * time.Second):
		t.Fatal("parec did not stop")
	}
	data, err := os.ReadFile(rec)
	if err != nil {
		t.Fatalf("no recording: %v\n%s", err, parecLog.String())
	}
	pcm, rate := readWAV(t, data)
	// Skip the silence before the call, then 200 ms more (the jitter
	// buffer filling), and the last 200 ms (the hang-up).
	for len(pcm) > 0 && pcm[0] < 800 && pcm[0] > -800 {
		pcm = pcm[1:]
	}
	for len(pcm) > 0 && pcm[len(pcm)-1] < 800 && pcm[len(pcm)-1] > -800 {
		pcm = pcm[:len(pcm)-1]
	}
	trim := int(rate / 5)
	if len(pcm) < int(rate)*3 {
		t.Fatalf("recording is %d samples at %.0f Hz (%d bytes), want several seconds", len(pcm), rate, len(data))
	}
	pcm = pcm[trim : len(pcm)-trim]
	if f := toneFreq(pcm, rate); math.Abs(f-toneHz) > 2 {
		t.Errorf("recorded tone at %.2f Hz, want %.0f", f, toneHz)
	}
	// A 441 Hz sine is below a tenth of its peak for about 6 % of each
	// period (~1 sample at 8 kHz); 10 ms of quiet is a lost packet.
	if q := longestQuiet(pcm); q > int(rate/100) {
		t.Errorf("a quiet run of %d samples (%.1f ms): a gap", q, float64(q)*1000/rate)
	}
	t.Logf("recorded %.2f s at %.0f Hz, tone %.2f Hz, longest quiet %d samples",
		float64(len(pcm))/rate, rate, toneFreq(pcm, rate), longestQuiet(pcm))
}

// wav makes a mono 16-bit 8 kHz WAV file.
func wav(pcm []int16) []byte {
	var b bytes.Buffer
	n := uint32(len(pcm) * 2)
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, 36+n)
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(8000), uint32(16000), uint16(2), uint16(16)} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, n)
	binary.Write(&b, binary.LittleEndian, pcm)
	return b.Bytes()
}

// readWAV returns the first channel of a 16-bit PCM WAV and its rate.
func readWAV(t *testing.T, data []byte) ([]int16, float64) {
	t.Helper()
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		t.Fatalf("not a WAV file (%d bytes)", len(data))
	}
	var rate float64
	var channels int
	for p := 12; p+8 <= len(data); {
		id, size := string(data[p:p+4]), int(binary.LittleEndian.Uint32(data[p+4:p+8]))
		body := data[p+8:]
		switch id {
		case "fmt ":
			channels = int(binary.LittleEndian.Uint16(body[2:4]))
			rate = float64(binary.LittleEndian.Uint32(body[4:8]))
			if bits := binary.LittleEndian.Uint16(body[14:16]); bits != 16 {
				t.Fatalf("WAV of %d bits", bits)
			}
		case "data":
			if size > len(body) || size == 0 {
				size = len(body) // a recorder killed before it wrote the size
			}
			body = body[:size]
			pcm := make([]int16, 0, size/2/max(channels, 1))
			for i := 0; i+2*channels <= len(body); i += 2 * channels {
				pcm = append(pcm, int16(binary.LittleEndian.Uint16(body[i:])))
			}
			return pcm, rate
		}
		p += 8 + size + size%2
	}
	t.Fatal("WAV without data")
	return nil, 0
}

// startPulse runs a PulseAudio server of the test's own, with one null
// sink "moh" at 8 kHz mono, and returns its PULSE_SERVER address.
func startPulse(t *testing.T, dir string) string {
	t.Helper()
	sock := filepath.Join(dir, "pulse.sock")
	cmd := exec.Command("pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1", "--disallow-exit",
		"--use-pid-file=no", "--log-target=stderr",
		"-L", "module-null-sink sink_name=moh rate=8000 channels=1",
		"-L", "module-native-protocol-unix socket="+sock+" auth-anonymous=1")
	cmd.Env = append(os.Environ(), "HOME="+dir, "PULSE_RUNTIME_PATH="+filepath.Join(dir, "pulse-run"),
		"PULSE_STATE_PATH="+filepath.Join(dir, "pulse-state"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var logb testkit.LockedBuffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatalf("pulseaudio (Debian: apt-get install pulseaudio pulseaudio-utils): %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return "unix:" + sock
		}
		select {
		case <-done:
			t.Fatalf("pulseaudio exited:\n%s", logb.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pulseaudio did not open %s:\n%s", sock, logb.String())
		}
	}
}

// TestMohdServesSIP runs the real daemon with `--output null,sip:…`: a
// caller in the allow-list hears the player's music (the built-in track),
// one outside it gets 403, and the status document lists the sip output
// with the call.
func TestMohdServesSIP(t *testing.T) {
	dir := t.TempDir()
	bin := testkit.MustBuildMohd(t, "")
	data := filepath.Join(dir, "data")
	tok, err := exec.Command(bin, "token", "create", "--scope", "read", "--data", data).Output()
	if err != nil {
		t.Fatalf("mohd token create: %v", err)
	}
	token := strings.TrimSpace(string(tok))
	const sipAddr = hostIP + ":5070"
	cmd := exec.Command(bin, "run", "--data", data, "--listen", "127.0.0.1:18090", "--backend", "direct",
		"--output", "null,sip:"+sipAddr, "--sip-allow", hostIP+"/32", "--sip-rtp-ports", "30000-30099")
	var logb testkit.LockedBuffer // read while mohd writes it
	cmd.Stdout, cmd.Stderr = &logb, &logb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("mohd said:\n%s", logb.String())
		}
	})
	waitFor(t, "mohd's SIP listener", 20*time.Second, func() bool {
		return strings.Contains(logb.String(), "SIP music-on-hold listening")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	outsider := newCaller(t, otherIP)
	if code, err := outsider.invite(ctx, sipAddr, offerSDP(otherIP, outsider.port(), "", "0")); err != nil || code != 403 {
		t.Errorf("caller outside --sip-allow: %d %v, want 403", code, err)
	}
	c := newCaller(t, hostIP)
	if code, err := c.invite(ctx, sipAddr, offerSDP(hostIP, c.port(), "", "8", "0")); err != nil || code != 200 {
		t.Fatalf("INVITE: %d %v", code, err)
	}
	time.Sleep(3 * time.Second)

	var doc struct {
		Outputs []struct {
			Kind  string `json:"kind"`
			State string `json:"state"`
			SIP   *struct {
				CallsActive int               `json:"calls_active"`
				Totals      map[string]uint64 `json:"totals"`
				Calls       []struct {
					Caller, Codec string
				} `json:"calls"`
			} `json:"sip"`
		} `json:"outputs"`
	}
	found := false
	if err := getStatus(token, &doc); err != nil {
		t.Errorf("status: %v", err)
	}
	for _, o := range doc.Outputs {
		if o.Kind != "sip" {
			continue
		}
		found = true
		if o.State != "ok" || o.SIP == nil || o.SIP.CallsActive != 1 || o.SIP.Calls[0].Codec != "PCMA" ||
			!strings.HasPrefix(o.SIP.Calls[0].Caller, hostIP+":") || o.SIP.Totals["forbidden"] != 1 {
			t.Errorf("sip output in status: %+v %+v", o, o.SIP)
		}
	}
	if !found {
		t.Errorf("no sip output in the status document's outputs: %+v", doc)
	}
	m, err := getMetrics()
	if err != nil {
		t.Errorf("metrics: %v", err)
	}
	for _, want := range []string{
		`moh_sip_calls_active{target="` + sipAddr + `"} 1`,
		`moh_sip_calls_total{result="forbidden",target="` + sipAddr + `"} 1`,
		`moh_sip_calls_total{result="answered",target="` + sipAddr + `"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := c.bye(ctx); err != nil {
		t.Errorf("BYE: %v", err)
	}
	pkts := c.packets()
	// 3 s is 150 packets; a loaded test machine may delay the first.
	if len(pkts) < 120 {
		t.Fatalf("%d RTP packets in 3 s, want about 150", len(pkts))
	}
	pcm := decode(pkts[25:]) // past the first half second
	var sum float64
	for _, v := range pcm {
		sum += float64(v) * float64(v)
	}
	// The built-in track at -19 dBm0 is far above -60 dBFS; silence is
	// a fault.
	if rms := math.Sqrt(sum / float64(len(pcm))); rms < 30 {
		t.Errorf("RMS %.1f of the call's audio: silence", rms)
	}
}

func getStatus(token string, v any) error {
	req, _ := http.NewRequest("GET", "http://127.0.0.1:18090/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("GET /api/v1/status: %s", res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

func getMetrics() (string, error) {
	res, err := http.Get("http://127.0.0.1:18090/metrics")
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}
