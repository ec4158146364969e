package webui

import (
	"fmt"
	"net/http"
	"time"

	"github.com/mohproject/moh/player"
)

// formToken issues the double-submit token for the login and setup forms,
// which are posted before a session exists: the form field must match the
// cookie, which another site can neither read nor set.
func (s *Server) formToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(preCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	t := randomID()
	setCookie(w, r, preCookie, t, time.Hour)
	return t
}

// checkForm parses a small urlencoded form and checks that it came from
// this site's own form. It answers the request itself on failure.
func (s *Server) checkForm(w http.ResponseWriter, r *http.Request, page string) bool {
	if crossSite(r) {
		s.render(w, http.StatusForbidden, page, pageData{Error: "Cross-site request refused."})
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.render(w, http.StatusBadRequest, page, pageData{Error: "The form could not be read.", FormCSRF: s.formToken(w, r)})
		return false
	}
	c, err := r.Cookie(preCookie)
	if err != nil || !sameSecret(r.PostForm.Get(csrfField), c.Value) {
		s.render(w, http.StatusForbidden, page, pageData{Error: "The form expired; please try again.", FormCSRF: s.formToken(w, r)})
		return false
	}
	return true
}

// lockedOutHint tells a throttled admin the ways in that a flood cannot
// close.
const lockedOutHint = "Locked out? On the box's console, `mohd passwd` sets a new password and lifts this block; API tokens keep working meanwhile."

// reserveGuess counts one password or setup-code guess from r's address
// before it is checked. If the address may not guess now it answers 429
// itself and returns nil.
func (s *Server) reserveGuess(w http.ResponseWriter, r *http.Request, page string) *reservation {
	key := throttleKey(r)
	res, wait := s.throttle.reserve(key)
	if res != nil {
		return res
	}
	secs := int(wait/time.Second) + 1
	s.securityEvent("throttled", key, fmt.Sprintf("login throttled for %s: too many wrong attempts", key))
	s.throttle.maybeSave()
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	s.render(w, http.StatusTooManyRequests, page, pageData{
		Error:    fmt.Sprintf("Too many attempts. Wait %d seconds and try again. %s", secs, lockedOutHint),
		FormCSRF: s.formToken(w, r),
	})
	return nil
}

// hashBusy answers 429 when every password-hash slot is taken; the guess
// was not checked, so it is given back.
func (s *Server) hashBusy(w http.ResponseWriter, r *http.Request, page string, res *reservation) {
	res.refund()
	w.Header().Set("Retry-After", "1")
	s.render(w, http.StatusTooManyRequests, page, pageData{
		Error:    "moh is busy checking other logins. Try again in a second.",
		FormCSRF: s.formToken(w, r),
	})
}

// securityEvent puts an attacker-driven security event (failed login,
// throttling) in the log and the event list, rate-limited per address so
// that a flood cannot push the watchdog's events out of the list. Failures
// are logged each (the throttle bounds them; log watchers count them);
// throttled requests once per address and window.
func (s *Server) securityEvent(kind, addr, msg string) {
	v := s.throttle.securityEvent(kind, addr)
	if v.summary != "" {
		s.log.Warn(v.summary)
		s.opt.Player.Events().Add(player.Event{Kind: "security", Message: v.summary})
	}
	if v.log || kind == "failed" {
		s.log.Warn(msg, "addr", addr)
	}
	if v.event {
		s.opt.Player.Events().Add(player.Event{Kind: "security", Message: msg})
	}
}

// adminSecurityEvent records a security change made with credentials
// (password change, token create or revoke): never rate-limited, since an
// attacker cannot make them.
func (s *Server) adminSecurityEvent(r *http.Request, msg string, args ...any) {
	s.opt.Player.Events().Add(player.Event{Kind: "security", Message: msg})
	s.audit(r, msg, args...)
}

// passwordChanged is told by endSessionsIfPasswordChanged that the password
// file changed (setup page or `mohd passwd`): it records the event and
// lifts every login throttle, since guesses at the old password no longer
// matter and the console reset must let a locked-out admin back in.
func (s *Server) passwordChanged(st fileStamp) {
	msg := "admin password changed: all sessions ended, login throttles lifted"
	if !st.exists {
		msg = "admin password file removed: all sessions ended"
	}
	e := player.Event{Kind: "security", Message: msg}
	if st.exists {
		e.Time = st.mod
	}
	s.opt.Player.Events().Add(e)
	s.throttle.reset()
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request) {
	// Take note of a password change first, so the session about to start
	// is not ended as one from before it.
	if err := s.endSessionsIfPasswordChanged(); err != nil {
		s.log.Error("check password file", "err", err)
	}
	ss := s.sessions.create()
	setCookie(w, r, sessionCookie, ss.id, s.opt.SessionLifetime)
	setCookie(w, r, preCookie, "", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if s.SetupCode() != "" {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "login.html", pageData{Title: "Log in", FormCSRF: s.formToken(w, r)})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.checkForm(w, r, "login.html") {
		return
	}
	// A password just set on the console lifts the throttle at once.
	if err := s.endSessionsIfPasswordChanged(); err != nil {
		s.log.Error("check password file", "err", err)
	}
	res := s.reserveGuess(w, r, "login.html")
	if res == nil {
		return
	}
	if !s.throttle.acquireHash() {
		s.hashBusy(w, r, "login.html", res)
		return
	}
	ok, err := s.creds.checkPassword(r.PostForm.Get("password"))
	s.throttle.releaseHash()
	if err == ErrNoPassword {
		res.refund()
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	if err != nil {
		res.refund()
		s.log.Error("check password", "err", err)
		s.render(w, http.StatusInternalServerError, "login.html", pageData{Error: "The password store is unreadable; see the log.", FormCSRF: s.formToken(w, r)})
		return
	}
	if !ok {
		res.fail()
		key := throttleKey(r)
		s.securityEvent("failed", key, "failed login from "+key)
		s.render(w, http.StatusUnauthorized, "login.html", pageData{Title: "Log in", Error: "Wrong password.", FormCSRF: s.formToken(w, r)})
		return
	}
	res.refund()
	s.log.Info("login", "addr", clientAddr(r))
	s.startSession(w, r)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if crossSite(r) {
		s.writeError(w, r, errCrossSite)
		return
	}
	c, err := r.Cookie(sessionCookie)
	if err == nil {
		if ss, ok := s.sessions.get(c.Value); ok {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			tok := r.Header.Get(csrfHeader)
			if tok == "" {
				tok = r.PostFormValue(csrfField)
			}
			if !sameSecret(tok, ss.csrf) {
				s.writeError(w, r, errCSRF)
				return
			}
			s.sessions.delete(ss.id)
		}
	}
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
