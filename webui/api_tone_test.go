package webui

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/player"
)

// toneEnv is a server over a player with the direct backend (the one
// that plays tones) on a null sink.
func toneEnv(t *testing.T) (*env, *player.Player, string) {
	p, _ := directPlayer(t, player.DirectOptions{OpenSink: openNullSink})
	runPlayer(t, p)
	e := newEnv(t, envOpts{opts: func(o *Options) { o.Player = p }})
	tok, _, err := CreateToken(e.dir, "operate", "installer")
	if err != nil {
		t.Fatal(err)
	}
	return e, p, tok
}

func TestToneAPI(t *testing.T) {
	e, p, tok := toneEnv(t)
	post := func(body string, tk string) (*http.Response, []byte) {
		h := bearer(tk)
		h["Content-Type"] = "application/json"
		return e.do(http.DefaultClient, "POST", "/api/v1/player/tone", strings.NewReader(body), h)
	}
	for _, tc := range []struct{ body, code string }{
		{`{}`, "bad_tone"},
		{`{"hz":1000}`, "bad_tone"},
		{`{"seconds":5,"dbfs":-20,"dbm0":-19}`, "bad_tone"},
		{`{"seconds":5,"hz":10}`, "bad_tone"},
		{`{"seconds":5,"hz":5000}`, "bad_tone"},
		{`{"seconds":601}`, "bad_tone"},
		{`{"seconds":-1}`, "bad_tone"},
		{`{"seconds":5,"dbfs":3}`, "bad_tone"},
		{`{"seconds":5,"dbm0":4}`, "bad_tone"},
		{`{"seconds":5,"volume":3}`, "bad_request"},
		{`{"seconds":"5"}`, "bad_request"},
		{`[`, "bad_request"},
	} {
		resp, body := post(tc.body, tok)
		wantError(t, resp, body, http.StatusBadRequest, tc.code)
	}
	read, _, err := CreateToken(e.dir, "read", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, body := post(`{"seconds":5}`, read)
	wantError(t, resp, body, http.StatusForbidden, "")

	resp, body = post(`{"seconds":30,"dbm0":-19}`, tok)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tone: %d %s", resp.StatusCode, body)
	}
	var a toneAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatal(err)
	}
	if a.Hz != 1000 || a.DBm0 != -19 || a.DBFS != -22.17 || a.Seconds != 30 || a.Until == nil || time.Until(*a.Until) < 25*time.Second {
		t.Fatalf("answer %+v", a)
	}
	// The line carries the tone: -22.17 dBFS, whatever the volume. The
	// tone's dBFS is sine-referenced (AES17, as G.711's +3.17 dBm0 is);
	// the level meter reads RMS against a full-scale square, 3.01 dB less.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := p.Status()
		if st.LevelDBFS > -25.3 && st.LevelDBFS < -25.05 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("level %.2f dBFS while the tone plays, want -25.18 (-22.17 dBFS sine-referenced)", st.LevelDBFS)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Any reader sees what plays and for how long yet.
	var now toneNowDoc
	getNow := func() {
		t.Helper()
		resp, body := e.do(http.DefaultClient, "GET", "/api/v1/player/tone", nil, bearer(read))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET tone: %d %s", resp.StatusCode, body)
		}
		now = toneNowDoc{}
		if err := json.Unmarshal(body, &now); err != nil {
			t.Fatal(err)
		}
	}
	getNow()
	if !now.Playing || now.Hz != 1000 || now.DBm0 != -19 || now.SecondsLeft < 20 || now.SecondsLeft > 30 || now.Until == nil {
		t.Fatalf("GET tone while it plays: %+v", now)
	}
	resp, body = post(`{"seconds":0}`, tok)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "until") {
		t.Fatalf("end tone: %d %s", resp.StatusCode, body)
	}
	getNow()
	if now.Playing || now.Until != nil {
		t.Fatalf("GET tone after it ended: %+v", now)
	}
	resp, body = e.do(http.DefaultClient, "GET", "/api/v1/player/tone", nil, nil)
	wantError(t, resp, body, http.StatusUnauthorized, "")
}

// With a backend that plays only its own queue (MPD), the tone is a
// conflict, said as such.
func TestToneAPIConflictWithoutDirect(t *testing.T) {
	e := newEnv(t, envOpts{})
	tok, _, err := CreateToken(e.dir, "operate", "")
	if err != nil {
		t.Fatal(err)
	}
	h := bearer(tok)
	h["Content-Type"] = "application/json"
	resp, body := e.do(http.DefaultClient, "POST", "/api/v1/player/tone", strings.NewReader(`{"seconds":5}`), h)
	wantError(t, resp, body, http.StatusConflict, "tone_unsupported")
}
