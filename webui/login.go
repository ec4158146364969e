package webui

import (
	"fmt"
	"net/http"
	"time"
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

// throttled answers 429 if addr has used up its guesses.
func (s *Server) throttled(w http.ResponseWriter, r *http.Request, page string) bool {
	ok, wait := s.throttle.allow(throttleKey(r))
	if ok {
		return false
	}
	secs := int(wait/time.Second) + 1
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	s.render(w, http.StatusTooManyRequests, page, pageData{
		Error:    fmt.Sprintf("Too many attempts. Wait %d seconds and try again.", secs),
		FormCSRF: s.formToken(w, r),
	})
	return true
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
	if !s.checkForm(w, r, "login.html") || s.throttled(w, r, "login.html") {
		return
	}
	ok, err := s.creds.checkPassword(r.PostForm.Get("password"))
	if err == ErrNoPassword {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	if err != nil {
		s.log.Error("check password", "err", err)
		s.render(w, http.StatusInternalServerError, "login.html", pageData{Error: "The password store is unreadable; see the log.", FormCSRF: s.formToken(w, r)})
		return
	}
	if !ok {
		s.throttle.fail(throttleKey(r))
		s.log.Warn("failed login", "addr", clientAddr(r))
		s.render(w, http.StatusUnauthorized, "login.html", pageData{Title: "Log in", Error: "Wrong password.", FormCSRF: s.formToken(w, r)})
		return
	}
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
