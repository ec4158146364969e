package sip

import (
	"context"
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
)

// TestMohdServesSIP runs the real daemon with `--output null,sip:…`: a
// caller in the allow-list hears the player's music (the built-in track),
// one outside it gets 403, and the status document lists the sip output
// with the call.
func TestMohdServesSIP(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "mohd")
	build := exec.Command("go", "build", "-o", bin, "github.com/mohproject/moh/cmd/mohd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build mohd: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	tok, err := exec.Command(bin, "token", "create", "--scope", "read", "--data", data).Output()
	if err != nil {
		t.Fatalf("mohd token create: %v", err)
	}
	token := strings.TrimSpace(string(tok))
	const sipAddr = hostIP + ":5070"
	cmd := exec.Command(bin, "run", "--data", data, "--listen", "127.0.0.1:18090", "--backend", "direct",
		"--output", "null,sip:"+sipAddr, "--sip-allow", hostIP+"/32", "--sip-rtp-ports", "30000-30099")
	var logb syncBuffer // read while mohd writes it
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
