package webui

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// routes is the whole URL space. Every route here is described in
// assets/openapi.json with the scope it needs (x-moh-scope); a test walks
// this router and the spec against each other.
func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(s.opt.Middleware...)
	r.Use(s.recoverer, securityHeaders)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this path"))
	})

	r.Get("/healthz", s.healthz)
	if s.opt.Metrics != nil {
		if s.opt.MetricsAuth {
			r.With(s.need(ScopeRead)).Get("/metrics", s.opt.Metrics.ServeHTTP)
		} else {
			r.Get("/metrics", s.opt.Metrics.ServeHTTP)
		}
	}

	// The admin page.
	r.Get("/", s.index)
	r.Get("/login", s.loginForm)
	r.Post("/login", s.login)
	r.Post("/logout", s.logout)
	r.Get("/setup", s.setupForm)
	r.Post("/setup", s.setup)
	r.Handle("/static/*", s.static())

	r.Route("/api/v1", func(r chi.Router) {
		r.Get("/openapi.json", s.openapi)

		read := r.With(s.need(ScopeRead))
		read.Get("/status", s.status)
		read.Get("/events", s.events)
		read.Get("/disk", s.disk)
		read.Get("/system", s.system)
		read.Get("/tracks", s.listTracks)
		read.Get("/tracks/{id}", s.getTrack)
		read.Get("/tracks/{id}/audio", s.trackAudio)
		read.Get("/tracks/{id}/preview", s.trackPreview)
		read.Get("/playlists", s.listPlaylists)
		read.Get("/playlists/{name}", s.getPlaylist)
		read.Get("/schedule", s.getSchedule)
		read.Get("/override", s.getOverride)
		read.Get("/player/tone", s.toneNow)
		r.With(s.streamAuth).Get("/stream/{format}", s.stream) // api_stream.go: Basic auth too, for PBX URLs

		op := r.With(s.need(ScopeOperate))
		op.Post("/player/play", s.play)
		op.Post("/player/stop", s.stop)
		op.Post("/player/next", s.next)
		op.Post("/player/tone", s.tone) // api_tone.go
		op.Put("/volume", s.setVolume)
		op.Put("/override", s.putOverride)
		op.Delete("/override", s.deleteOverride)

		admin := r.With(s.need(ScopeAdmin))
		admin.Post("/tracks", s.upload)
		admin.Delete("/tracks/{id}", s.deleteTrack)
		admin.Put("/playlist", s.reorder)
		admin.Post("/playlists", s.createPlaylist)
		admin.Put("/playlists/{name}", s.putPlaylist)
		admin.Delete("/playlists/{name}", s.deletePlaylist)
		admin.Put("/schedule", s.putSchedule)
		admin.Get("/uploads/{id}", s.uploadProgress)
		admin.Get("/tokens", s.listTokens)
		admin.Post("/tokens", s.createToken)
		admin.Delete("/tokens/{id}", s.revokeToken)
		admin.Post("/system/update", s.systemUpdate)
	})
	return r
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	if isAPI(r) {
		s.writeError(w, r, errNotFound)
		return
	}
	http.Error(w, "404 page not found", http.StatusNotFound)
}
