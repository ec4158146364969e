package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mohproject/moh/player"
)

func TestOutputsCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewOutputsCollector(func() []player.OutputStatus {
		return []player.OutputStatus{
			{Kind: "alsa", Target: "default", State: "failed", LastError: "no card"},
			{Kind: "rtp", Target: "239.1.1.1:16384", State: "ok", PacketsSent: 500, SendErrors: 2},
		}
	}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[key] = v
		}
	}
	want := map[string]float64{
		"moh_output_up kind=alsa target=default":           0,
		"moh_output_up kind=rtp target=239.1.1.1:16384":    1,
		"moh_rtp_packets_total target=239.1.1.1:16384":     500,
		"moh_rtp_send_errors_total target=239.1.1.1:16384": 2,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}
