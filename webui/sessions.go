package webui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// sessionCookie names the admin page's session cookie.
const sessionCookie = "moh_session"

// session is a logged-in browser. Sessions live only in memory: a restart
// logs the admin out, and steady operation writes nothing to flash.
type session struct {
	id       string
	csrf     string
	created  time.Time
	lastSeen time.Time
}

// sessions holds live sessions with an absolute lifetime and an idle
// timeout, and a cap on how many exist so a flood of logins cannot grow
// memory without bound.
type sessions struct {
	now      func() time.Time
	lifetime time.Duration
	idle     time.Duration
	max      int

	mu   sync.Mutex
	byID map[string]*session
}

func newSessions(now func() time.Time, lifetime, idle time.Duration) *sessions {
	return &sessions{now: now, lifetime: lifetime, idle: idle, max: 1000, byID: map[string]*session{}}
}

func randomID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand never fails on Linux; if it did, carrying on with a
		// predictable id would be worse than stopping.
		panic("crypto/rand: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session, evicting expired ones and, at the cap, the
// oldest.
func (s *sessions) create() *session {
	now := s.now()
	ss := &session{id: randomID(), csrf: randomID(), created: now, lastSeen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	if len(s.byID) >= s.max {
		var oldest *session
		for _, v := range s.byID {
			if oldest == nil || v.created.Before(oldest.created) {
				oldest = v
			}
		}
		delete(s.byID, oldest.id)
	}
	s.byID[ss.id] = ss
	return ss
}

// get returns the live session with id and refreshes its idle timer.
func (s *sessions) get(id string) (session, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	if s.expired(ss, now) {
		delete(s.byID, id)
		return session{}, false
	}
	ss.lastSeen = now
	return *ss, true
}

func (s *sessions) expired(ss *session, now time.Time) bool {
	return now.Sub(ss.created) >= s.lifetime || now.Sub(ss.lastSeen) >= s.idle
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

// deleteAll ends every session, e.g. after the password changed.
func (s *sessions) deleteAll() {
	s.mu.Lock()
	clear(s.byID)
	s.mu.Unlock()
}

func (s *sessions) sweepLocked(now time.Time) {
	for id, ss := range s.byID {
		if s.expired(ss, now) {
			delete(s.byID, id)
		}
	}
}

// sameSecret compares two secrets in constant time.
func sameSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
