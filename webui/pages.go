package webui

import (
	"bytes"
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

// index is the admin page itself; its data comes from the API.
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
