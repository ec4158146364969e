package webui

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/player"
)

// StatusDoc is the document GET /api/v1/status serves, built afresh; the
// fleet link publishes the same one.
func (s *Server) StatusDoc() status.Doc { return s.statusDoc() }

// statusDoc is GET /api/v1/status: the one status document.
func (s *Server) statusDoc() status.Doc {
	d := status.Build(s.opt.Player, s.diskStatus(), s.opt.Version)
	if s.opt.System != nil {
		d.System = s.opt.System()
	}
	if s.opt.Programme != nil {
		p := s.opt.Programme.Current()
		d.Programme = &p
	}
	if st, ok := s.StreamStats(); ok {
		d.Streams = &st
	}
	return d
}

// statusMaxAge is how long one status snapshot answers GET /status and
// /healthz. Pages poll four times a second, so nobody sees the difference,
// but under a flood of requests the player is asked at most twenty times a
// second: the API never queues on the locks the audio loop takes.
const statusMaxAge = 50 * time.Millisecond

type statusSnap struct {
	at   time.Time
	doc  status.Doc
	body []byte // doc encoded once for every request it answers
}

// cachedStatus returns a status at most statusMaxAge old. One request
// refreshes it while the others answer with the previous one. It uses the
// real monotonic clock: it is a cache, not behaviour.
func (s *Server) cachedStatus() *statusSnap {
	now := time.Now()
	snap := s.statusCache.Load()
	if snap != nil && now.Sub(snap.at) < statusMaxAge && !now.Before(snap.at) {
		return snap
	}
	if !s.statusMu.TryLock() {
		if snap != nil {
			return snap
		}
		s.statusMu.Lock() // the very first one: wait for it
	}
	defer s.statusMu.Unlock()
	return s.refreshStatusLocked()
}

// refreshStatus asks the player now and caches the answer; callers that
// just changed something use it directly so their answer shows the change.
// Refreshes take turns (statusMu): unordered, a refresh that read the
// player before a concurrent change could store its snapshot after the
// one that read the change, and a status read right after the last
// acknowledged change would show an older one.
func (s *Server) refreshStatus() *statusSnap {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	return s.refreshStatusLocked()
}

// refreshStatusLocked is refreshStatus for a caller holding statusMu.
func (s *Server) refreshStatusLocked() *statusSnap {
	doc := s.statusDoc()
	body, err := json.Marshal(doc)
	if err != nil {
		// Only unencodable floats could do this; answer without the cache.
		s.log.Error("encode status", "err", err)
	}
	snap := &statusSnap{at: time.Now(), doc: doc, body: append(body, '\n')}
	s.statusCache.Store(snap)
	return snap
}

func (s *Server) writeStatus(w http.ResponseWriter, snap *statusSnap) {
	if len(snap.body) <= 1 {
		writeJSON(w, http.StatusOK, snap.doc)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(snap.body)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	s.writeStatus(w, s.cachedStatus())
}

// healthz is GET /healthz for ping checks (check_http, load balancers):
// 200 while the health is ok or warning, 503 when critical, with the
// health verdict as its body. It needs no auth, so it tells an outsider
// only whether the line is alive and why not — not what plays.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	h := s.cachedStatus().doc.Health
	code := http.StatusOK
	if h.State == player.HealthCritical {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	n := 50
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 1000 {
			s.writeError(w, r, errorf(http.StatusBadRequest, "bad_request", "n must be an integer from 1 to 1000"))
			return
		}
	}
	ev := s.opt.Player.Events().Recent(n)
	if ev == nil {
		ev = []player.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": ev})
}

func (s *Server) play(w http.ResponseWriter, r *http.Request) {
	if err := s.opt.Player.Play(); err != nil {
		s.writeError(w, r, err) // not saved, so not made live: 507 on a full disk
		return
	}
	s.audit(r, "play")
	s.writeStatus(w, s.refreshStatus())
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) {
	if err := s.opt.Player.Stop(); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.audit(r, "stop")
	s.writeStatus(w, s.refreshStatus())
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	s.opt.Player.Next()
	s.audit(r, "next")
	s.writeStatus(w, s.refreshStatus())
}

type volumeDoc struct {
	Volume *int `json:"volume"`
}

func (s *Server) setVolume(w http.ResponseWriter, r *http.Request) {
	var v volumeDoc
	if err := decodeJSON(w, r, &v); err != nil {
		s.writeError(w, r, err)
		return
	}
	if v.Volume == nil || *v.Volume < 0 || *v.Volume > 100 {
		s.writeError(w, r, errorf(http.StatusBadRequest, "bad_volume", "volume must be an integer from 0 to 100"))
		return
	}
	if err := s.opt.Player.SetVolume(*v.Volume); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.refreshStatus()
	s.audit(r, "volume", "volume", *v.Volume)
	writeJSON(w, http.StatusOK, map[string]int{"volume": s.opt.Player.Settings().Volume})
}

// record logs an admin change and adds it to the event log the page and
// the API show. Play, stop, next and volume are recorded by the player
// itself.
func (s *Server) record(r *http.Request, msg string, args ...any) {
	s.opt.Player.Events().Add(player.Event{Kind: "admin", Message: msg})
	s.audit(r, msg, args...)
}

// audit logs who changed what: the token id, or "session".
func (s *Server) audit(r *http.Request, what string, args ...any) {
	p := principalFrom(r.Context())
	who := "session"
	if p.tokenID != "" {
		who = "token:" + p.tokenID
	}
	s.log.Info("admin action", append([]any{"action", what, "by", who, "addr", clientAddr(r)}, args...)...)
}
