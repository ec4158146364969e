package webui

import (
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
)

// uploadIDPattern is what a client-chosen upload id may look like.
var uploadIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// uploadState is GET /api/v1/uploads/{id}: how far the library's ingest
// of one upload has got. The page polls it after the transfer finished to
// show decoding and normalising progress.
type uploadState struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Stage    string   `json:"stage"`
	Fraction float64  `json:"fraction"`
	Done     bool     `json:"done"`
	TrackID  string   `json:"track_id,omitempty"`
	Error    *errInfo `json:"error,omitempty"`
	updated  time.Time
}

type errInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// uploadTracker remembers recent uploads' progress in memory for a few
// minutes, so a page that polls a little late still sees the outcome.
type uploadTracker struct {
	now  func() time.Time
	keep time.Duration

	mu   sync.Mutex
	byID map[string]*uploadState
}

func newUploadTracker(now func() time.Time) *uploadTracker {
	return &uploadTracker{now: now, keep: 10 * time.Minute, byID: map[string]*uploadState{}}
}

func (t *uploadTracker) update(id string, f func(*uploadState)) {
	if id == "" {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	u := t.byID[id]
	if u == nil {
		for k, v := range t.byID {
			if now.Sub(v.updated) > t.keep {
				delete(t.byID, k)
			}
		}
		if len(t.byID) >= 1000 {
			return
		}
		u = &uploadState{ID: id}
		t.byID[id] = u
	}
	f(u)
	u.updated = now
}

func (t *uploadTracker) get(id string) (uploadState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	u, ok := t.byID[id]
	if !ok || t.now().Sub(u.updated) > t.keep {
		return uploadState{}, false
	}
	return *u, true
}

func (s *Server) uploadProgress(w http.ResponseWriter, r *http.Request) {
	u, ok := s.uploads.get(chi.URLParam(r, "id"))
	if !ok {
		s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "no upload with this id (unknown, or finished more than 10 minutes ago)"))
		return
	}
	writeJSON(w, http.StatusOK, u)
}
