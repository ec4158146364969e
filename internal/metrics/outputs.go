package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mohproject/moh/player"
)

var (
	descOutputUp   = prometheus.NewDesc("moh_output_up", "1 while the output carries audio (state ok), by output kind and target.", []string{"kind", "target"}, nil)
	descRTPPackets = prometheus.NewDesc("moh_rtp_packets_total", "RTP packets sent, by destination.", []string{"target"}, nil)
	descRTPErrors  = prometheus.NewDesc("moh_rtp_send_errors_total", "RTP packets that could not be sent, by destination.", []string{"target"}, nil)
	descSIPActive  = prometheus.NewDesc("moh_sip_calls_active", "SIP calls on hold now, by SIP listen address.", []string{"target"}, nil)
	descSIPCalls   = prometheus.NewDesc("moh_sip_calls_total", "SIP INVITEs by result: answered, forbidden (403), busy (486), not_acceptable (488), canceled, failed.", []string{"target", "result"}, nil)
)

// NewOutputsCollector reports every output of the direct backend: each
// output's up gauge and, for RTP outputs, its packet counters. outputs is
// LineOutputs.Statuses.
func NewOutputsCollector(outputs func() []player.OutputStatus) prometheus.Collector {
	return &outputsCollector{outputs}
}

type outputsCollector struct{ outputs func() []player.OutputStatus }

func (c *outputsCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *outputsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, o := range c.outputs() {
		gauge(ch, descOutputUp, b2f(o.Up()), o.Kind, o.Target)
		if o.Kind == player.OutputRTP {
			counter(ch, descRTPPackets, float64(o.PacketsSent), o.Target)
			counter(ch, descRTPErrors, float64(o.SendErrors), o.Target)
		}
		if o.SIP != nil {
			gauge(ch, descSIPActive, float64(o.SIP.CallsActive), o.Target)
			for result, n := range o.SIP.Totals {
				counter(ch, descSIPCalls, float64(n), o.Target, result)
			}
		}
	}
}
