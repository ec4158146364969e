package webui

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/programme"
)

// testProgramme serves a real store; what plays now is the evaluator's
// answer on the server's clock.
type testProgramme struct {
	st  *programme.Store
	now func() time.Time
}

func (p testProgramme) Store() *programme.Store { return p.st }
func (p testProgramme) Current() programme.Programme {
	now := p.now()
	return programme.Evaluate(p.st.Schedule(), p.st.Override(now), now)
}

func programmeEnv(t *testing.T) (*env, map[Scope]string) {
	t.Helper()
	clock := newFakeClock()
	known := map[string]bool{"t1": true, "t2": true, "msg": true}
	st, err := programme.Open(t.TempDir(), []string{"t1", "t2"}, func(id string) bool { return known[id] })
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{password: testPW, clock: clock, opts: func(o *Options) {
		o.Programme = testProgramme{st: st, now: clock.Now}
	}})
	tokens := e.tokenPerScope(t)
	return e, tokens
}

func TestProgrammeAPI(t *testing.T) {
	e, tok := programmeEnv(t)
	admin, op, read := bearer(tok[ScopeAdmin]), bearer(tok[ScopeOperate]), bearer(tok[ScopeRead])
	jsonHdr := func(h map[string]string) map[string]string {
		out := map[string]string{"Content-Type": "application/json"}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	send := func(method, path, body string, h map[string]string) (*http.Response, []byte) {
		t.Helper()
		return e.do(nil, method, path, strings.NewReader(body), jsonHdr(h))
	}

	// The library order became the playlist default.
	resp, body := e.do(nil, "GET", "/api/v1/playlists", nil, read)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `{"name":"default","tracks":["t1","t2"]}`) {
		t.Fatalf("playlists: %d %s", resp.StatusCode, body)
	}

	// Create, with a message; an operate token may not.
	pl := `{"name":"after-hours","tracks":["t2"],"message":{"track":"msg","every_minutes":5,"interrupt":false}}`
	resp, body = send("POST", "/api/v1/playlists", pl, op)
	wantError(t, resp, body, 403, "forbidden")
	resp, body = send("POST", "/api/v1/playlists", pl, admin)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	resp, body = send("POST", "/api/v1/playlists", pl, admin)
	wantError(t, resp, body, 409, "exists")

	for _, c := range []struct{ method, path, body, code string }{
		{"POST", "/api/v1/playlists", `{"name":"x","tracks":["nope"]}`, "unknown_track"},
		{"POST", "/api/v1/playlists", `{"name":"x","tracks":["t1","t1"]}`, "bad_programme"},
		{"POST", "/api/v1/playlists", `{"name":"../x","tracks":[]}`, "bad_programme"},
		{"POST", "/api/v1/playlists", `{"name":"x","message":{"track":"msg","every_minutes":0}}`, "bad_programme"},
		{"PUT", "/api/v1/playlists/a", `{"name":"b","tracks":[]}`, "bad_request"},
		{"PUT", "/api/v1/schedule", `{"timezone":"Mars/Olympus","default":"default"}`, "unknown_timezone"},
		{"PUT", "/api/v1/schedule", `{"timezone":"Europe/Paris","default":"nope"}`, "unknown_playlist"},
		{"PUT", "/api/v1/schedule", `{"timezone":"Europe/Paris","default":"default","rules":[{"days":["mon"],"from":"25:00","to":"18:00","playlist":"default"}]}`, "bad_programme"},
		{"PUT", "/api/v1/schedule", `{"timezone":"Europe/Paris","default":"default","rules":[{"days":["funday"],"from":"08:00","to":"18:00","playlist":"default"}]}`, "bad_programme"},
		{"PUT", "/api/v1/schedule", `{"timezone":"Europe/Paris","default":"default","rules":[{"days":["mon"],"from":"08:00","to":"12:00","playlist":"default"},{"days":["mon"],"from":"10:00","to":"14:00","playlist":"after-hours"}]}`, "bad_programme"},
		{"PUT", "/api/v1/schedule", `{"timezone":"Europe/Paris","default":"default","exceptions":[{"from":"2026-12-26","to":"2026-12-24","playlist":"default"}]}`, "bad_programme"},
		{"PUT", "/api/v1/override", `{"track":"t1","playlist":"default"}`, "bad_programme"},
		{"PUT", "/api/v1/override", `{"track":"nope"}`, "unknown_track"},
		{"PUT", "/api/v1/override", `{"playlist":"nope"}`, "unknown_playlist"},
		{"PUT", "/api/v1/override", `{"track":"t1","until":"2020-01-01T00:00:00Z"}`, "bad_programme"},
	} {
		resp, body := send(c.method, c.path, c.body, admin)
		wantError(t, resp, body, 400, c.code)
	}

	sched := `{"timezone":"Europe/Paris","default":"default","rules":[{"name":"evening","days":["fri"],"from":"18:00","to":"08:00","playlist":"after-hours"}],"exceptions":[{"from":"2026-12-24","to":"2026-12-26","yearly":true,"playlist":"after-hours"}]}`
	resp, body = send("PUT", "/api/v1/schedule", sched, admin)
	if resp.StatusCode != 200 {
		t.Fatalf("schedule: %d %s", resp.StatusCode, body)
	}
	// A playlist the schedule uses cannot go; default never.
	resp, body = e.do(nil, "DELETE", "/api/v1/playlists/after-hours", nil, admin)
	wantError(t, resp, body, 409, "in_use")
	resp, body = e.do(nil, "DELETE", "/api/v1/playlists/default", nil, admin)
	wantError(t, resp, body, 409, "in_use")
	resp, body = e.do(nil, "DELETE", "/api/v1/playlists/nope", nil, admin)
	wantError(t, resp, body, 404, "not_found")

	// The fake clock is Friday 2026-01-02 04:04 in Paris: the evening
	// rule of Thursday does not apply, Friday's starts at 18:00.
	var st struct {
		Programme programme.Programme `json:"programme"`
	}
	resp, body = e.do(nil, "GET", "/api/v1/status", nil, read)
	if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status: %d %s", resp.StatusCode, body)
	}
	if p := st.Programme; p.Playlist != "default" || p.Reason != "default" || p.NextPlaylist != "after-hours" ||
		p.NextChange == nil || !p.NextChange.Equal(time.Date(2026, 1, 2, 17, 0, 0, 0, time.UTC)) {
		t.Fatalf("programme: %+v", p)
	}

	// Override: operate may; it shows in status; clearing it ends it.
	resp, body = e.do(nil, "GET", "/api/v1/override", nil, read)
	wantError(t, resp, body, 404, "no_override")
	resp, body = send("PUT", "/api/v1/override", `{"track":"msg","until":"2026-01-02T05:00:00Z"}`, read)
	wantError(t, resp, body, 403, "forbidden")
	resp, body = send("PUT", "/api/v1/override", `{"track":"msg","until":"2026-01-02T05:00:00Z"}`, op)
	if resp.StatusCode != 200 {
		t.Fatalf("override: %d %s", resp.StatusCode, body)
	}
	time.Sleep(60 * time.Millisecond) // the status cache
	_, body = e.do(nil, "GET", "/api/v1/status", nil, read)
	json.Unmarshal(body, &st)
	if p := st.Programme; p.Reason != "override" || p.Track != "msg" || p.NextChange == nil || p.NextPlaylist != "default" {
		t.Fatalf("programme under override: %+v", p)
	}
	resp, body = e.do(nil, "GET", "/api/v1/override", nil, read)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"track":"msg"`) {
		t.Fatalf("override: %d %s", resp.StatusCode, body)
	}
	e.clock.Advance(2 * time.Hour) // it expires by itself
	resp, body = e.do(nil, "GET", "/api/v1/override", nil, read)
	wantError(t, resp, body, 404, "no_override")
	resp, _ = e.do(nil, "DELETE", "/api/v1/override", nil, op)
	if resp.StatusCode != 204 {
		t.Fatalf("clear: %d", resp.StatusCode)
	}

	// PUT replaces; the schedule no longer using it, it can go.
	resp, body = send("PUT", "/api/v1/playlists/after-hours", `{"tracks":["t1","t2"]}`, admin)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"tracks":["t1","t2"]`) || strings.Contains(string(body), "message") {
		t.Fatalf("put: %d %s", resp.StatusCode, body)
	}
	resp, _ = send("PUT", "/api/v1/schedule", `{"timezone":"Europe/Paris","default":"default"}`, admin)
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	resp, _ = e.do(nil, "DELETE", "/api/v1/playlists/after-hours", nil, admin)
	if resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	resp, body = e.do(nil, "GET", "/api/v1/playlists/after-hours", nil, read)
	wantError(t, resp, body, 404, "not_found")
}
