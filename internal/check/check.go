// Package check is `mohd check`: a Nagios/NRPE plugin that asks the local
// mohd (its /healthz and /metrics, which need no token) whether the line
// is alive and prints one status line with perfdata. Its verdict
// (Evaluate) is shared with `mohctl check`, which judges a box Nagios
// cannot reach from the status document it keeps on the broker.
package check

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Nagios exit codes.
const (
	OK       = 0
	Warning  = 1
	Critical = 2
	Unknown  = 3
)

var stateNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// Options of one check run.
type Options struct {
	// URL is the base address of the local mohd, e.g. http://127.0.0.1:8080.
	URL string
	// DiskWarnPct and DiskCritPct: free space on the library's file system
	// below these percentages is a WARNING / CRITICAL (defaults 15 and 5).
	DiskWarnPct, DiskCritPct float64
	// RecentFault: a watchdog fault this recent is a WARNING even though
	// audio is back (default 15 min), so flapping boxes get noticed.
	RecentFault time.Duration
	// Timeout bounds the whole check (default 5 s).
	Timeout time.Duration
	// Client defaults to a plain client; mohd serving TLS on loopback
	// may need one that trusts its certificate.
	Client *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Health is the box's one health verdict: what GET /healthz serves and
// the health field of its status document.
type Health struct {
	State  string `json:"state"`
	Reason string `json:"reason"`
	Silent bool   `json:"silent"`
}

// Run performs the check, writes one line to w and returns the exit code.
func Run(ctx context.Context, o Options, w io.Writer) int {
	if o.URL == "" {
		o.URL = "http://127.0.0.1:8080"
	}
	o.URL = strings.TrimRight(o.URL, "/")
	// The thresholds' defaults are Evaluate's.
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	return fetch(ctx, o).Write(w)
}

func get(ctx context.Context, c *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b, err
}

// fetch asks mohd for /healthz and /metrics and judges what it got.
func fetch(ctx context.Context, o Options) Result {
	code, body, err := get(ctx, o.Client, o.URL+"/healthz")
	if err != nil {
		return Fail(Critical, fmt.Sprintf("mohd not answering at %s: %v", o.URL, err))
	}
	in := Input{From: "/healthz"}
	if code != http.StatusOK && code != http.StatusServiceUnavailable || json.Unmarshal(body, &in.Health) != nil {
		return Fail(Unknown, fmt.Sprintf("unexpected /healthz answer: HTTP %d", code))
	}
	code, body, err = get(ctx, o.Client, o.URL+"/metrics")
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("HTTP %d", code)
	}
	if err != nil {
		in.Unreadable = fmt.Sprintf("cannot read /metrics: %v", err)
	} else {
		in.fromMetrics(parse(string(body)))
	}
	return Evaluate(in, Thresholds{DiskWarnPct: o.DiskWarnPct, DiskCritPct: o.DiskCritPct, RecentFault: o.RecentFault}, o.Now())
}

// fromMetrics fills what mohd's /metrics says into in.
func (in *Input) fromMetrics(m samples) {
	if free, ok := m.get("moh_disk_free_bytes", nil); ok {
		total, _ := m.get("moh_disk_total_bytes", nil)
		in.Disk = &Disk{Free: free, Total: total}
	}
	if v, ok := m.get("moh_disk_error", nil); ok && v == 1 {
		in.DiskError = true
	}
	if ts, labels, ok := m.first("moh_watchdog_last_fault_timestamp_seconds"); ok {
		in.LastFault = time.Unix(0, int64(ts*1e9))
		in.LastFaultClass = labels["fault"]
	}
	if v, ok := m.get("moh_output_level_dbfs", nil); ok {
		in.Level = &v
	}
	in.Recoveries = m.sum("moh_watchdog_recoveries_total")
	in.Faults = m.sum("moh_watchdog_faults_total")
	if v, ok := m.get("moh_uptime_seconds", nil); ok {
		in.Uptime = &v
	}
	if v, ok := m.get("moh_volume", nil); ok {
		in.Volume = &v
	}
}

func human(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	}
	return fmt.Sprintf("%.0f KiB", b/(1<<10))
}
