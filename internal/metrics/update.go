package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	descUpdatePhase = prometheus.NewDesc("moh_update_phase", "The system update's phase (1 for the current one): idle, downloading, verifying, installing, rebooting, trial, good, rollback, failed.", []string{"phase"}, nil)
	descRollbacks   = prometheus.NewDesc("moh_update_rollbacks_total", "Updates this box rolled back (a new slot that did not come up or never became healthy).", nil, nil)
)

// UpdateSource is the system updater as metrics sees it.
type UpdateSource interface {
	// Phase is the current phase; Phases all of them.
	Phase() string
	Phases() []string
	Rollbacks() uint64
}

// NewUpdateCollector exports the system update's phase as an info-style
// gauge (every phase present, so an alert can match phase="rollback"
// from the start) and its rollback count. Register it with
// Registry().MustRegister on a box whose update is on.
func NewUpdateCollector(u UpdateSource) prometheus.Collector { return &updateCollector{u} }

type updateCollector struct{ u UpdateSource }

func (c *updateCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *updateCollector) Collect(ch chan<- prometheus.Metric) {
	cur := c.u.Phase()
	for _, p := range c.u.Phases() {
		gauge(ch, descUpdatePhase, b2f(p == cur), p)
	}
	counter(ch, descRollbacks, float64(c.u.Rollbacks()))
}
