package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/sysinfo"
)

// TestSystemMetrics: what predicts a failure (internal/sysinfo) is served
// when the box reads it, and left out, not faked, when it cannot.
func TestSystemMetrics(t *testing.T) {
	synced, written := false, uint64(123456789)
	exp := time.Unix(1800000000, 0)
	sys := &sysinfo.System{ClockSynced: &synced, DataWrittenBytes: &written,
		Certs: []sysinfo.Cert{{Name: "fleet", NotAfter: exp}, {Name: "https", Error: "read certificate: no such file"}}}
	out := scrape(t, New(Options{Version: "1", System: func() *sysinfo.System { return sys }}).Handler())
	for _, want := range []string{
		"moh_clock_synced 0\n",
		`moh_cert_expiry_timestamp_seconds{cert="fleet"} 1.8e+09` + "\n",
		"moh_data_written_bytes_total 1.23456789e+08\n",
		"# TYPE moh_data_written_bytes_total counter\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, `cert="https"`) {
		t.Error("an unreadable certificate got an expiry")
	}
	// Nothing read, or no reading at all, serves none of them (and does
	// not fail the scrape).
	out = scrape(t, New(Options{Version: "1", System: func() *sysinfo.System { return &sysinfo.System{} }}).Handler()) +
		scrape(t, New(Options{Version: "1", System: func() *sysinfo.System { return nil }}).Handler())
	for _, absent := range []string{"moh_clock_synced", "moh_cert_expiry", "moh_data_written"} {
		if strings.Contains(out, absent+"{") || strings.Contains(out, absent+" ") {
			t.Errorf("%s served though the box could not read it:\n%s", absent, out)
		}
	}
}
