package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
	"github.com/zaf/g711"
)

// TestHTTPStreams plays a 441 Hz loop in a real mohd and reads every
// stream format the way a PBX does: curl for ~3 s (ulaw, alaw, slin),
// Asterisk's mode=custom (curl through a pipe into a reader that stops
// after N bytes), and the MP3 stream decoded by mpg123.
func TestHTTPStreams(t *testing.T) {
	data := loop441Data(t)
	tok := createToken(t, data, "read")
	addr := testkit.FreeAddr(t)
	c := &apiClient{base: "http://" + addr, token: tok, hc: &http.Client{Timeout: 5 * time.Second}}
	d := startDaemon(t, data, addr)
	waitPlayingTrack(t, c, d, "loop441")
	// The level stage glides onto the loop after the built-in track.
	time.Sleep(3 * time.Second)
	url := func(f string) string { return "http://" + addr + "/api/v1/stream/" + f }

	// curl's exit is 28 (timed out) when --max-time ends a healthy stream.
	curl := func(t *testing.T, format string, secs int) []byte {
		t.Helper()
		out, err := exec.Command("curl", "-s", "--max-time", fmt.Sprint(secs), "-u", "moh:"+tok, url(format)).Output()
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 28) {
			t.Fatalf("curl %s: %v", format, err)
		}
		return out
	}
	slin := func(b []byte) []float64 {
		x := make([]float64, len(b)/2)
		for i := range x {
			x[i] = float64(int16(binary.LittleEndian.Uint16(b[2*i:])))
		}
		return x
	}
	for _, tc := range []struct {
		format string
		decode func([]byte) []float64
	}{
		{"slin", slin},
		{"ulaw", func(b []byte) []float64 { return slin(g711.DecodeUlaw(b)) }},
		{"alaw", func(b []byte) []float64 { return slin(g711.DecodeAlaw(b)) }},
	} {
		t.Run(tc.format, func(t *testing.T) {
			start := time.Now()
			b := curl(t, tc.format, 3)
			x := tc.decode(b)
			took := time.Since(start).Seconds()
			t.Logf("%s: %d bytes, %d samples in %.2f s", tc.format, len(b), len(x), took)
			// no gap: the samples arrive at the real-time rate
			if float64(len(x)) < 8000*(took-0.6) {
				t.Fatalf("%d samples in %.2f s: want ~8000/s", len(x), took)
			}
			checkSine441(t, x)
		})
	}

	t.Run("asterisk-pipe", func(t *testing.T) {
		// What musiconhold.conf mode=custom runs: the application's
		// stdout is read as raw slin; here head ends it after 2 s.
		const n = 2 * 8000 * 2
		out, err := exec.Command("sh", "-c", fmt.Sprintf("curl -s -u moh:%s %s | head -c %d", tok, url("slin"), n)).Output()
		if err != nil {
			t.Fatalf("pipe: %v", err)
		}
		if len(out) != n {
			t.Fatalf("read %d bytes through the pipe, want %d", len(out), n)
		}
		checkSine441(t, slin(out))
	})

	t.Run("mp3", func(t *testing.T) {
		// slin read alongside gives the level the MP3 must carry
		ref := make(chan []byte, 1)
		go func() {
			out, _ := exec.Command("curl", "-s", "--max-time", "4", "-u", "moh:"+tok, url("slin")).Output()
			ref <- out
		}()
		b := curl(t, "mp3", 4)
		refDBm0 := rmsDBm0(slin(<-ref))
		dec := exec.Command("mpg123", "-q", "-s", "-")
		dec.Stdin = bytes.NewReader(b)
		pcm, err := dec.Output()
		if err != nil {
			t.Fatalf("mpg123: %v", err)
		}
		x := slin(pcm)
		t.Logf("mp3: %d bytes → %d samples at %d Hz", len(b), len(x), 16000)
		if len(x) < 2*16000 {
			t.Fatalf("only %d samples decoded", len(x))
		}
		x = x[len(x)/4:] // past the encoder's start
		// zero crossings give the frequency to a fraction of a Hz over 2 s
		var cross int
		first, last := -1, -1
		for i := 1; i < len(x); i++ {
			if x[i-1] < 0 && x[i] >= 0 {
				if first < 0 {
					first = i
				}
				last = i
				cross++
			}
		}
		hz := float64(cross-1) / (float64(last-first) / 16000)
		dbm0 := rmsDBm0(x)
		t.Logf("mp3 tone %.2f Hz at %.2f dBm0 (slin at the same time %.2f dBm0)", hz, dbm0, refDBm0)
		if math.Abs(hz-441) > 2 {
			t.Errorf("mp3 tone at %.2f Hz, want 441 ± 2", hz)
		}
		if math.Abs(dbm0-refDBm0) > 1 {
			t.Errorf("mp3 level %.2f dBm0, the telephone signal's %.2f", dbm0, refDBm0)
		}
	})

	// The shared encoder stops after its last listener.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if strings.Contains(buf.String(), "moh_stream_mp3_encoder_running 0") && strings.Contains(buf.String(), `moh_stream_listeners{format="slin"} 0`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("encoder still running or listeners left:\n%s", buf.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPlayingTrack waits until mohd plays the track named name.
func waitPlayingTrack(t *testing.T, c *apiClient, d *mohdProc, name string) {
	t.Helper()
	pollStatus(t, c, d, "play "+name, func(raw json.RawMessage) bool {
		var st struct {
			State string `json:"state"`
			Track *struct {
				Name string `json:"name"`
			} `json:"track"`
		}
		return json.Unmarshal(raw, &st) == nil && st.State == "playing" && st.Track != nil && strings.Contains(st.Track.Name, name)
	})
}

// rmsDBm0 is the RMS level of x (past its first quarter) in dBm0.
func rmsDBm0(x []float64) float64 {
	x = x[len(x)/4:]
	var sum float64
	for _, v := range x {
		sum += v * v
	}
	// dBm0 is against a full-scale sine (+3.17 dBm0), whose RMS is
	// 32767/√2, not its peak of 32767.
	return 20*math.Log10(math.Sqrt(sum/float64(len(x)))/(32767/math.Sqrt2)) + 3.17
}
