package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mohproject/moh/internal/status"
)

var (
	descStreamListeners = prometheus.NewDesc("moh_stream_listeners", "HTTP stream listeners now (GET /api/v1/stream/{format}), by format: mp3, ulaw, alaw, slin.", []string{"format"}, nil)
	descStreamDropped   = prometheus.NewDesc("moh_stream_dropped_total", "HTTP stream listeners cut off because they fell behind (queue full, or a write blocked past 2 s), by format.", []string{"format"}, nil)
	descStreamMP3       = prometheus.NewDesc("moh_stream_mp3_encoder_running", "1 while the shared MP3 encoder (lame) runs for MP3 listeners.", nil, nil)
)

// NewStreamsCollector reports the HTTP streams. streams is the web
// server's StreamStats; while it says false (no streams served) nothing
// is reported.
func NewStreamsCollector(streams func() (status.Streams, bool)) prometheus.Collector {
	return &streamsCollector{streams}
}

type streamsCollector struct {
	streams func() (status.Streams, bool)
}

func (c *streamsCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *streamsCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.streams()
	if !ok {
		return
	}
	for f, n := range st.Listeners {
		gauge(ch, descStreamListeners, float64(n), f)
	}
	for f, n := range st.Dropped {
		counter(ch, descStreamDropped, float64(n), f)
	}
	gauge(ch, descStreamMP3, b2f(st.MP3Encoder == "running"))
}
