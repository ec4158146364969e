package webui

import (
	"bytes"
	"crypto/rand"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed assets/templates/*.html
var templateFS embed.FS

//go:embed assets/static
var staticFS embed.FS

// pages holds the admin page's templates, parsed once at start.
type pages struct {
	t *template.Template
}

func loadPages() (*pages, error) {
	t, err := template.ParseFS(templateFS, "assets/templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	return &pages{t: t}, nil
}

// pageData is what every template sees.
type pageData struct {
	Title    string
	Version  string
	CSRF     string
	FormCSRF string
	Error    string
	Notice   string
}

func (s *Server) render(w http.ResponseWriter, status int, name string, d pageData) {
	d.Version = s.opt.Version
	var buf bytes.Buffer
	if err := s.pages.t.ExecuteTemplate(&buf, name, d); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (s *Server) static() http.Handler {
	sub, err := fs.Sub(staticFS, "assets/static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fsrv := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			s.notFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}

// setCookie sets an HttpOnly, SameSite=Strict cookie, Secure under TLS.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

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

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	if s.SetupCode() != "" {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	p, err := s.authenticate(r)
	if err != nil || p.session == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "index.html", pageData{Title: "moh", CSRF: p.session.csrf})
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

// newSetupCode makes a code that is easy to read off a log and type on a
// phone: 15 characters from an alphabet without look-alikes (75 bits).
func newSetupCode() string {
	const alphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	var sb strings.Builder
	for i, c := range b {
		if i > 0 && i%5 == 0 {
			sb.WriteByte('-')
		}
		// 256 is not a multiple of 31: the slight bias costs well under
		// a bit of the code's 75.
		sb.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return sb.String()
}

func normaliseCode(c string) string {
	c = strings.ToUpper(c)
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, c)
}

func (s *Server) setupForm(w http.ResponseWriter, r *http.Request) {
	if s.SetupCode() == "" {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "setup.html", pageData{Title: "Set up moh", FormCSRF: s.formToken(w, r)})
}

func (s *Server) setup(w http.ResponseWriter, r *http.Request) {
	code := s.SetupCode()
	if code == "" {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	if !s.checkForm(w, r, "setup.html") || s.throttled(w, r, "setup.html") {
		return
	}
	again := func(status int, msg string) {
		s.render(w, status, "setup.html", pageData{Title: "Set up moh", Error: msg, FormCSRF: s.formToken(w, r)})
	}
	if !sameSecret(normaliseCode(r.PostForm.Get("code")), normaliseCode(code)) {
		s.throttle.fail(throttleKey(r))
		s.log.Warn("wrong setup code", "addr", clientAddr(r))
		again(http.StatusUnauthorized, "Wrong setup code. It is printed in moh's log.")
		return
	}
	pw := r.PostForm.Get("password")
	if pw != r.PostForm.Get("confirm") {
		again(http.StatusBadRequest, "The two passwords differ.")
		return
	}
	if err := CheckPasswordPolicy(pw); err != nil {
		again(http.StatusBadRequest, "The password is not acceptable: "+err.Error()+".")
		return
	}
	s.setupMu.Lock()
	if s.setupCode == "" { // someone else finished setup meanwhile
		s.setupMu.Unlock()
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	err := SetPassword(s.opt.DataDir, pw)
	if err == nil {
		s.setupCode = ""
	}
	s.setupMu.Unlock()
	if err != nil {
		s.log.Error("set password", "err", err)
		again(http.StatusInternalServerError, "The password could not be stored; see the log.")
		return
	}
	s.log.Info("admin password set on the setup page", "addr", clientAddr(r))
	s.startSession(w, r)
}
