package webui

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
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

// The slow-upload check: a client that trickles its upload would hold one
// of the few upload slots for the whole upload deadline (30 min), so two
// of them lock the admin out of uploading. After the grace period the
// upload must have moved at least min bytes per second, on average, over
// the last window.
const (
	defaultMinUploadRate = 16 << 10
	uploadRateGrace      = 10 * time.Second
	uploadRateWindow     = 10 * time.Second
)

type rateLimit struct {
	min           int64 // bytes per second; negative: no check
	grace, window time.Duration
}

// rateGuard is an upload's request body, counted as it arrives.
type rateGuard struct {
	body  io.ReadCloser
	lim   rateLimit
	n     atomic.Int64
	slow  atomic.Bool
	stopc chan struct{}
	done  chan struct{}
	once  sync.Once
}

// guardRate starts watching body. stop must be called before the handler
// returns: the watcher sets the connection's read deadline.
func (s *Server) guardRate(w http.ResponseWriter, body io.ReadCloser) *rateGuard {
	g := &rateGuard{body: body, lim: s.upRate, stopc: make(chan struct{}), done: make(chan struct{})}
	if g.lim.min < 0 || g.lim.window <= 0 {
		close(g.done)
		return g
	}
	go g.watch(http.NewResponseController(w))
	return g
}

func (g *rateGuard) Read(p []byte) (int, error) {
	n, err := g.body.Read(p)
	g.n.Add(int64(n))
	if err != nil && g.slow.Load() {
		err = g.tooSlow()
	}
	return n, err
}

func (g *rateGuard) Close() error { return g.body.Close() }

func (g *rateGuard) tooSlow() error {
	return errorf(http.StatusRequestTimeout, "too_slow", fmt.Sprintf(
		"the upload arrived too slowly (less than %s/s over %s); check the network link and try again",
		mib(g.lim.min), g.lim.window))
}

// stop ends the watch; it is safe to call more than once.
func (g *rateGuard) stop() {
	g.once.Do(func() { close(g.stopc) })
	<-g.done
}

// watch samples the byte count and, once the upload is too slow, cuts the
// pending read short by moving the connection's read deadline to the past:
// a client that sends nothing at all never returns from Read otherwise.
func (g *rateGuard) watch(rc *http.ResponseController) {
	defer close(g.done)
	type sample struct {
		at time.Time
		n  int64
	}
	start := time.Now()
	samples := []sample{{start, 0}}
	tick := time.NewTicker(max(g.lim.window/10, 10*time.Millisecond))
	defer tick.Stop()
	for {
		var now time.Time
		select {
		case <-g.stopc:
			return
		case now = <-tick.C:
		}
		n := g.n.Load()
		samples = append(samples, sample{now, n})
		cut := now.Add(-g.lim.window)
		for len(samples) > 1 && !samples[1].at.After(cut) {
			samples = samples[1:]
		}
		base := samples[0]
		if now.Sub(start) < g.lim.grace || base.at.After(cut) {
			continue
		}
		if float64(n-base.n) < float64(g.lim.min)*now.Sub(base.at).Seconds() {
			g.slow.Store(true)
			_ = rc.SetReadDeadline(time.Unix(1, 0))
			return
		}
	}
}
