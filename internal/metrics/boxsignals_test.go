package metrics

import (
	"strings"
	"testing"

	"github.com/mohproject/moh/internal/sysinfo"
)

// TestDiskTrendAndUnderrunMetrics: the disk trend and the ALSA underrun
// count are served when the box has them, and absent when it has not.
func TestDiskTrendAndUnderrunMetrics(t *testing.T) {
	trend, underruns := -62914560.0, uint64(3)
	sys := &sysinfo.System{DiskFreeTrend: &trend, ALSAUnderruns: &underruns}
	out := scrape(t, New(Options{Version: "1", System: func() *sysinfo.System { return sys }}).Handler())
	for _, want := range []string{
		"moh_disk_free_trend_bytes_per_hour -6.291456e+07\n",
		"# TYPE moh_disk_free_trend_bytes_per_hour gauge\n",
		"moh_alsa_underruns_total 3\n",
		"# TYPE moh_alsa_underruns_total counter\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	out = scrape(t, New(Options{Version: "1", System: func() *sysinfo.System { return &sysinfo.System{} }}).Handler())
	for _, absent := range []string{"moh_disk_free_trend_bytes_per_hour ", "moh_alsa_underruns_total "} {
		if strings.Contains(out, absent) {
			t.Errorf("%s served without a reading:\n%s", absent, out)
		}
	}
}
