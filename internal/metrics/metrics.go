package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mohproject/moh/internal/sysinfo"
	"github.com/mohproject/moh/player"
)

// Source is the player as metrics sees it; *player.Player satisfies it.
type Source interface {
	Status() player.Status
	AudioFlowing() bool
}

// Disk is free and total bytes of the file system holding the library.
type Disk struct {
	Free, Total uint64
}

// Options say where each family of values comes from. Nil funcs leave
// their metrics out (e.g. no MQTT metric when the agent is not enabled).
type Options struct {
	Player  Source
	Version string
	// Tracks is the number of tracks in the library.
	Tracks func() int
	// Disk reports the library's file system; an error is exported as
	// moh_disk_error 1 rather than failing the scrape.
	Disk func() (Disk, error)
	// MQTTConnected reports the fleet agent's broker link.
	MQTTConnected func() bool
	// System reports clock sync, certificate expiry and flash writes
	// (internal/sysinfo); nil leaves those metrics out.
	System func() *sysinfo.System
}

// Metrics owns a registry with moh's collectors. Its counters (uploads,
// HTTP) are fed by the callers through CountUpload and HTTPMiddleware.
type Metrics struct {
	reg      *prometheus.Registry
	uploads  *prometheus.CounterVec
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New builds the registry: moh's own collector, upload and HTTP counters,
// and the Go runtime and process collectors.
func New(o Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.uploads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moh_uploads_total",
		Help: "Track uploads by result (ok, rejected, failed).",
	}, []string{"result"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moh_http_requests_total",
		Help: "HTTP requests by method, route pattern and status code.",
	}, []string{"method", "route", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "moh_http_request_duration_seconds",
		Help:    "HTTP request latency by method and route pattern.",
		Buckets: []float64{.001, .005, .02, .1, .5, 2, 10, 60},
	}, []string{"method", "route"})
	m.reg.MustRegister(
		&collector{o: o},
		m.uploads, m.requests, m.duration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, r := range []string{"ok", "rejected", "failed"} {
		m.uploads.WithLabelValues(r) // present at 0 so rate() works from the start
	}
	return m
}

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry is the underlying registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// CountUpload records one upload; result is "ok", "rejected" (bad or
// unsupported file, too big, disk full) or "failed" (internal error).
func (m *Metrics) CountUpload(result string) {
	m.uploads.WithLabelValues(result).Inc()
}
