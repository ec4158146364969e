package check

import (
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample is one series of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

type samples []sample

// parse reads mohd's /metrics text with the Prometheus text parser and
// flattens it into series as they appear on the wire (a histogram into
// its _bucket, _sum and _count series, a summary into its quantiles, _sum
// and _count). What precedes a line the parser cannot read is kept: a
// plugin should judge the box on what it can read (a body cut short by
// the size limit, say), not give up on it.
func parse(text string) samples {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if pe, ok := err.(expfmt.ParseError); ok {
		// The parser has already added the series of the line it stopped
		// at, without its value: read again only the lines before it.
		lines := strings.SplitAfterN(text, "\n", pe.Line)
		families, _ = p.TextToMetricFamilies(strings.NewReader(strings.Join(lines[:len(lines)-1], "")))
	}
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	sort.Strings(names) // the same answer every time, whatever the map order
	var out samples
	for _, name := range names {
		mf := families[name]
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			add := func(suffix string, v float64, extra ...string) {
				l := labels
				if len(extra) == 2 {
					l = make(map[string]string, len(labels)+1)
					for k, v := range labels {
						l[k] = v
					}
					l[extra[0]] = extra[1]
				}
				out = append(out, sample{name: name + suffix, labels: l, value: v})
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add("", m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add("", m.GetGauge().GetValue())
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add("", q.GetValue(), "quantile", model.FloatString(q.GetQuantile()).String())
				}
				add("_sum", s.GetSampleSum())
				add("_count", float64(s.GetSampleCount()))
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					add("_bucket", float64(b.GetCumulativeCount()), "le", model.FloatString(b.GetUpperBound()).String())
				}
				add("_sum", h.GetSampleSum())
				add("_count", float64(h.GetSampleCount()))
			default: // untyped
				add("", m.GetUntyped().GetValue())
			}
		}
	}
	return out
}

// get returns the value of the series name whose labels include want.
func (ss samples) get(name string, want map[string]string) (float64, bool) {
	for _, s := range ss {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

func (ss samples) first(name string) (float64, map[string]string, bool) {
	for _, s := range ss {
		if s.name == name {
			return s.value, s.labels, true
		}
	}
	return 0, nil, false
}

func (ss samples) sum(name string) float64 {
	var t float64
	for _, s := range ss {
		if s.name == name {
			t += s.value
		}
	}
	return t
}
