package webui

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mohproject/moh/internal/phone"
	"github.com/mohproject/moh/internal/sysinfo"
	"github.com/mohproject/moh/player"
)

// Player is what the web surface needs of the player.
type Player interface {
	Status() player.Status
	// Play, Stop and SetVolume save the change before it goes live; an
	// error means it was refused and nothing changed.
	Play() error
	Stop() error
	Next()
	SetVolume(v int) error
	AudioFlowing() bool
	Events() *player.EventLog
	Settings() player.Settings
}

// Options configure a Server.
type Options struct {
	Player Player
	// Library is the track library; nil answers the track endpoints with
	// 503 (the daemon may run without one while it is being repaired).
	Library Library
	// Programme serves the playlists, schedule and override endpoints;
	// nil answers them with 503.
	Programme Programme
	// DataDir holds the admin password hash, the token list and the
	// auto-generated TLS certificate.
	DataDir string
	Logger  *slog.Logger
	Version string
	// Metrics serves GET /metrics; nil answers 404.
	Metrics http.Handler
	// MetricsAuth makes /metrics need a read token (Prometheus sends it
	// with `authorization:`). Off by default, like /healthz: monitoring
	// and `mohd check` read it without credentials.
	MetricsAuth bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Middleware wraps every request inside the router, so it can read
	// chi's route pattern (e.g. the metrics' HTTP request counter).
	Middleware []func(http.Handler) http.Handler
	// System, if set, reads what predicts a failure (clock sync,
	// certificate expiry, flash writes) for the status document.
	System func() *sysinfo.System
	// OnUpload, if set, is told the result of every track upload: "ok"
	// (added, or already there), "rejected" (the library or the request
	// refused it) or "failed" (moh's own fault).
	OnUpload func(result string)
	// Update, if set, is the system updater behind /api/v1/system.
	Update Updater
	// Streams is the telephone signal the HTTP streams serve
	// (api_stream.go); nil answers them with 503 (MPD backend).
	Streams *phone.Hub
	// MaxStreamListeners caps the HTTP streams over all formats
	// (default 64); Lame is the MP3 stream's encoder (default "lame").
	MaxStreamListeners int
	Lame               string

	// TLSCert and TLSKey are PEM files to serve HTTPS with. TLSAuto
	// instead generates a self-signed certificate once and keeps it in
	// DataDir.
	TLSCert, TLSKey string
	TLSAuto         bool

	// MaxUploadBytes caps an upload request body (default 512 MiB).
	MaxUploadBytes int64
	// MaxConcurrentUploads caps uploads being received or ingested at
	// once (default 2): ingest is CPU-heavy and must not starve playback.
	MaxConcurrentUploads int
	// MaxConns caps open HTTP connections (default 512), so a flood
	// cannot use up the file descriptors the player needs. At the cap the
	// oldest idle connection that never authenticated is closed to make
	// room (conns.go).
	MaxConns int
	// MaxConnsPerAddr caps the connections of one client address, or of
	// one IPv6 /64 (default 32). A newcomer over it takes the place of
	// the address's longest-idle unauthenticated connection that has had
	// its answer, or is closed at once.
	MaxConnsPerAddr int
	// MinUploadRate is the slowest average transfer, in bytes per second
	// over a 10 s window after the first 10 s, an upload may arrive at
	// before it is refused with 408 and its slot freed (default 16 KiB/s;
	// negative disables). A trickling client must not hold an upload slot
	// for the whole 30 min upload deadline.
	MinUploadRate int64
	// SessionLifetime and SessionIdle bound a login (default 12 h and 1 h).
	SessionLifetime, SessionIdle time.Duration
}

// Server is the HTTP surface of one moh box.
type Server struct {
	opt      Options
	log      *slog.Logger
	now      func() time.Time
	creds    *credentials
	sessions *sessions
	throttle *throttle
	uploads  *uploadTracker
	upSlots  chan struct{}
	pages    *pages
	tls      *tls.Config
	certs    *certSlot // the served certificate, swapped by ReloadTLS
	streams  *streamSet
	toneLast toneLog // api_tone.go: the test tone started last
	handler  http.Handler
	router   chi.Router

	setupMu   sync.Mutex
	setupCode string

	pwMu    sync.Mutex
	pwStamp fileStamp // the password file the live sessions logged in with

	statusMu    sync.Mutex // held by the one refresh of statusCache at a time
	statusCache atomic.Pointer[statusSnap]

	// unauthTimeout bounds reads on unauthenticated connections;
	// upRate the slow-upload check. Fields so tests can shorten them.
	unauthTimeout time.Duration
	upRate        rateLimit
}

// New builds a Server. If no admin password is set yet it generates a
// one-time setup code and logs it: the first-run setup page asks for it,
// so nobody on the network can claim a fresh box before its owner.
func New(o Options) (*Server, error) {
	if o.Player == nil {
		return nil, errors.New("webui: no player")
	}
	if o.DataDir == "" {
		return nil, errors.New("webui: no data dir")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = 512 << 20
	}
	if o.MaxConcurrentUploads <= 0 {
		o.MaxConcurrentUploads = 2
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 512
	}
	if o.MaxConnsPerAddr <= 0 {
		o.MaxConnsPerAddr = defaultConnsPerAddr
	}
	if o.MinUploadRate == 0 {
		o.MinUploadRate = defaultMinUploadRate
	}
	if o.SessionLifetime <= 0 {
		o.SessionLifetime = 12 * time.Hour
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = time.Hour
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	s := &Server{
		opt:      o,
		log:      o.Logger.With("component", "webui"),
		now:      o.Now,
		creds:    newCredentials(o.DataDir),
		sessions: newSessions(o.Now, o.SessionLifetime, o.SessionIdle),
		throttle: newThrottle(o.Now, o.DataDir, o.Logger),
		uploads:  newUploadTracker(o.Now),
		upSlots:  make(chan struct{}, o.MaxConcurrentUploads),

		unauthTimeout: unauthReadTimeout,
		upRate:        rateLimit{min: o.MinUploadRate, grace: uploadRateGrace, window: uploadRateWindow},
	}
	var err error
	if s.pages, err = loadPages(); err != nil {
		return nil, err
	}
	if s.tls, err = loadTLS(o, s.log); err != nil {
		return nil, err
	}
	s.certs = adoptCerts(s.tls)
	s.streams = newStreamSet(o)
	set, err := PasswordSet(o.DataDir)
	if err != nil {
		return nil, err
	}
	if s.pwStamp, err = s.creds.passwordStamp(); err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	if !set {
		s.setupCode = newSetupCode()
		s.log.Warn("no admin password set: open /setup on this box's web page and enter the setup code (or run `mohd passwd`)",
			"setup_code", s.setupCode)
	}
	s.router = s.routes()
	s.handler = s.router
	return s, nil
}

// SetupCode returns the one-time first-run setup code, or "" once an admin
// password exists.
func (s *Server) SetupCode() string {
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	if s.setupCode != "" {
		if set, err := PasswordSet(s.opt.DataDir); err == nil && set {
			s.setupCode = ""
		}
	}
	return s.setupCode
}

// Handler is the whole HTTP surface, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// TLS reports whether Run serves HTTPS.
func (s *Server) TLS() bool { return s.tls != nil }

// httpServer sets the timeouts that keep slow or idle clients from
// holding connections. Uploads and media downloads extend their own
// deadlines per request (see extendDeadlines), so WriteTimeout can stay
// short for everything else. Connections that have not authenticated get
// shorter read timeouts still (see connLimiter).
func (s *Server) httpServer() *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		TLSConfig:         s.tls,
		ConnContext:       connContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// Run listens on addr and serves until ctx is done, then shuts down
// gracefully.
func (s *Server) Run(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := s.httpServer()
	lim := newConnLimiter(ln, s.opt.MaxConns, s.opt.MaxConnsPerAddr, s.unauthTimeout, s.log)
	hs.ConnState = lim.connState
	ln = lim
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
		ln = tls.NewListener(ln, s.tls)
	}
	s.log.Info("serving", "addr", ln.Addr().String(), "scheme", scheme)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	defer s.throttle.flush()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	<-errc
	return nil
}

// clientAddr is the address throttling counts by: the TCP peer. Headers
// such as X-Forwarded-For are not trusted, because the box is meant to be
// reached directly and an attacker could set them.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// throttleKey is the unit login throttling counts by: the address for
// IPv4, the /64 for IPv6, since one host commonly holds a whole /64.
func throttleKey(r *http.Request) string {
	a := clientAddr(r)
	ip := net.ParseIP(a)
	if ip == nil || ip.To4() != nil {
		return a
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

func isAPI(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/healthz" || r.URL.Path == "/metrics"
}
