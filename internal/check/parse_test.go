package check

import "testing"

// TestParse: the series mohd's /metrics carries come out with their
// labels (escapes and all), histograms as their wire series, and a body
// cut short keeps every line before the cut without a made-up value for
// the line that was cut.
func TestParse(t *testing.T) {
	text := `# HELP moh_volume Volume.
# TYPE moh_volume gauge
moh_volume 62
# TYPE moh_watchdog_faults_total counter
moh_watchdog_faults_total{class="no_output"} 2
moh_watchdog_faults_total{class="mpd \"died\", again\n{x}"} 3
# TYPE moh_upload_seconds histogram
moh_upload_seconds_bucket{le="1"} 4
moh_upload_seconds_bucket{le="+Inf"} 5
moh_upload_seconds_sum 7.5
moh_upload_seconds_count 5
moh_uptime_seconds 12
`
	m := parse(text)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"moh_volume", nil, 62},
		{"moh_watchdog_faults_total", map[string]string{"class": "no_output"}, 2},
		{"moh_watchdog_faults_total", map[string]string{"class": "mpd \"died\", again\n{x}"}, 3},
		{"moh_upload_seconds_bucket", map[string]string{"le": "1"}, 4},
		{"moh_upload_seconds_bucket", map[string]string{"le": "+Inf"}, 5},
		{"moh_upload_seconds_sum", nil, 7.5},
		{"moh_upload_seconds_count", nil, 5},
		{"moh_uptime_seconds", nil, 12},
	} {
		if v, ok := m.get(c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v, %v; want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if s := m.sum("moh_watchdog_faults_total"); s != 5 {
		t.Errorf("sum of faults %v, want 5", s)
	}

	// Cut in the middle of a series: the lines before it are read, the
	// cut one is not (not even as 0).
	cut := parse("moh_volume 62\nmoh_uptime_seconds 12\nmoh_disk_free_bytes{mount=\"/data\"} 1e")
	if v, ok := cut.get("moh_uptime_seconds", nil); !ok || v != 12 {
		t.Errorf("line before the cut: %v, %v", v, ok)
	}
	if _, ok := cut.get("moh_disk_free_bytes", nil); ok {
		t.Error("the cut line was read")
	}
	cut = parse("moh_volume 62\nmoh_uptime_seconds 1")
	if v, ok := cut.get("moh_volume", nil); !ok || v != 62 {
		t.Errorf("line before a cut value: %v, %v", v, ok)
	}
	if len(parse("not metrics at all {")) != 0 {
		t.Error("junk read as series")
	}
}
