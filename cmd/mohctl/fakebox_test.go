package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohproject/moh/player"
)

// fakeBox speaks mohd's HTTP API contract (DESIGN.md) in-process. It
// stands in for mohd where a thousand boxes are needed (the bench) and
// lets tests inject faults; TestAgainstRealMohd runs the same commands
// against real mohd processes.
type fakeBox struct {
	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	tokens  map[string]string // token → id
	nextTok int
	state   string
	fault   string // a backend fault, for the health verdict
	volume  int
	tracks  []track
	events  []map[string]any
	calls   []string
}

func newFakeBox(t testing.TB, token string) *fakeBox {
	f := &fakeBox{t: t, tokens: map[string]string{token: "tok0"}, state: "playing", volume: 50}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeBox) fail(w http.ResponseWriter, code int, c, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, c, msg)
}

func (f *fakeBox) ok(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeBox) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeBox) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tokID, authed := f.tokens[tok]
	if !authed {
		f.fail(w, 401, "unauthorized", "missing or invalid token")
		return
	}
	key := r.Method + " " + r.URL.Path
	f.calls = append(f.calls, key)
	switch {
	case key == "GET /api/v1/status":
		st := map[string]any{"state": f.state, "backend": "direct", "volume": f.volume,
			"playlist_length": len(f.tracks), "uptime_ns": int64(3 * time.Hour), "version": "1.0.0",
			"watchdog": map[string]any{"recoveries": 2},
			"disk":     map[string]any{"free_bytes": 2 << 30, "total_bytes": 8 << 30, "warning": false},
			"health":   f.health()}
		if len(f.tracks) > 0 {
			st["track"] = f.tracks[0]
		}
		f.ok(w, 200, st)
	case key == "GET /api/v1/events":
		f.ok(w, 200, map[string]any{"events": f.events})
	case key == "GET /api/v1/tracks":
		f.ok(w, 200, map[string]any{"tracks": f.tracks})
	case key == "POST /api/v1/tracks":
		file, hdr, err := r.FormFile("file")
		if err != nil {
			f.fail(w, 400, "bad_request", err.Error())
			return
		}
		n, _ := io.Copy(io.Discard, file)
		tr := track{ID: fmt.Sprintf("id%d-%d", len(f.tracks), n), Name: hdr.Filename}
		f.tracks = append(f.tracks, tr)
		f.ok(w, 201, tr)
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/api/v1/tracks/"):
		id := strings.TrimPrefix(r.URL.Path, "/api/v1/tracks/")
		for i, tr := range f.tracks {
			if tr.ID == id {
				f.tracks = append(f.tracks[:i], f.tracks[i+1:]...)
				w.WriteHeader(204)
				return
			}
		}
		f.fail(w, 404, "not_found", "no such track")
	case key == "PUT /api/v1/playlist":
		var body struct{ Order []string }
		json.NewDecoder(r.Body).Decode(&body)
		byID := map[string]track{}
		for _, tr := range f.tracks {
			byID[tr.ID] = tr
		}
		if len(body.Order) != len(f.tracks) {
			f.fail(w, 400, "bad_order", "order must name every track once")
			return
		}
		var nt []track
		for _, id := range body.Order {
			tr, ok := byID[id]
			if !ok {
				f.fail(w, 400, "bad_order", "unknown id "+id)
				return
			}
			nt = append(nt, tr)
		}
		f.tracks = nt
		f.ok(w, 200, map[string]any{"tracks": f.tracks})
	case key == "POST /api/v1/player/play":
		f.state = "playing"
		f.ok(w, 200, map[string]any{"state": f.state})
	case key == "POST /api/v1/player/stop":
		f.state = "stopped"
		f.ok(w, 200, map[string]any{"state": f.state})
	case key == "POST /api/v1/player/next":
		f.ok(w, 200, map[string]any{"state": f.state})
	case key == "PUT /api/v1/volume":
		var body struct{ Volume *int }
		json.NewDecoder(r.Body).Decode(&body)
		if body.Volume == nil || *body.Volume < 0 || *body.Volume > 100 {
			f.fail(w, 400, "bad_volume", "volume must be 0..100")
			return
		}
		f.volume = *body.Volume
		f.ok(w, 200, map[string]int{"volume": f.volume})
	case key == "GET /api/v1/tokens":
		var list []map[string]any
		for t, id := range f.tokens {
			list = append(list, map[string]any{"id": id, "name": "n", "scope": "admin", "current": t == tok})
		}
		f.ok(w, 200, map[string]any{"tokens": list})
	case key == "POST /api/v1/tokens":
		f.nextTok++
		nt := fmt.Sprintf("moh_new%d_%p", f.nextTok, f)
		id := fmt.Sprintf("tok%d", f.nextTok)
		f.tokens[nt] = id
		f.ok(w, 201, map[string]any{"id": id, "token": nt, "scope": "admin"})
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/api/v1/tokens/"):
		id := strings.TrimPrefix(r.URL.Path, "/api/v1/tokens/")
		for t, tid := range f.tokens {
			if tid == id {
				delete(f.tokens, t)
				w.WriteHeader(204)
				return
			}
		}
		f.fail(w, 404, "not_found", "no token "+id)
	default:
		_ = tokID
		f.fail(w, 404, "not_found", "no such resource")
	}
}

// health is the verdict a real box gives in the same situation: the
// player's own health model over the fake's state.
func (f *fakeBox) health() player.Health {
	st := player.Status{Wanted: player.StateStopped, Volume: f.volume}
	st.State, st.Fault = player.State(f.state), player.ParseFault(f.fault)
	if f.state == "playing" || f.fault != "" {
		st.Wanted = player.StatePlaying
	}
	return player.AssessHealth(st, f.state == "playing" && f.fault == "", nil, time.Now())
}
