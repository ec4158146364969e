package webui

import (
	"crypto/rand"
	"net/http"
	"os"
	"strings"
)

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
	if !s.checkForm(w, r, "setup.html") {
		return
	}
	// The setup code is guessed like a password and counted the same way.
	res := s.reserveGuess(w, r, "setup.html")
	if res == nil {
		return
	}
	again := func(status int, msg string) {
		s.render(w, status, "setup.html", pageData{Title: "Set up moh", Error: msg, FormCSRF: s.formToken(w, r)})
	}
	if !sameSecret(normaliseCode(r.PostForm.Get("code")), normaliseCode(code)) {
		res.fail()
		key := throttleKey(r)
		s.securityEvent("failed", key, "wrong setup code from "+key)
		again(http.StatusUnauthorized, "Wrong setup code. It is printed in moh's log.")
		return
	}
	res.refund()
	pw := r.PostForm.Get("password")
	if pw != r.PostForm.Get("confirm") {
		again(http.StatusBadRequest, "The two passwords differ.")
		return
	}
	host, _ := os.Hostname()
	if err := CheckPasswordPolicy(pw, code, host); err != nil {
		again(http.StatusBadRequest, "The password is not acceptable: "+err.Error()+".")
		return
	}
	// Storing the password hashes it: the same fixed memory budget as
	// checking one.
	if !s.throttle.acquireHash() {
		s.hashBusy(w, r, "setup.html", nil)
		return
	}
	defer s.throttle.releaseHash()
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
