// Package check is `mohd check`: a Nagios/NRPE plugin that asks the local
// mohd (its /healthz and /metrics, which need no token) whether the line
// is alive and prints one status line with perfdata.
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

// health is GET /healthz: the box's one health verdict.
type health struct {
	State  string `json:"state"`
	Reason string `json:"reason"`
	Silent bool   `json:"silent"`
}

type result struct {
	code int
	msgs []string
	perf []string
}

// severity orders exit codes for "the worst wins": a known problem
// outranks not being able to tell.
var severity = map[int]int{OK: 0, Unknown: 1, Warning: 2, Critical: 3}

// sanitize keeps a message on one line and out of the perfdata part:
// Nagios reads only the first line and splits it at '|'.
var sanitize = strings.NewReplacer("\n", " ", "\r", " ", "|", "/")

func (r *result) raise(code int, msg string) {
	if severity[code] > severity[r.code] {
		r.code = code
	}
	r.msgs = append(r.msgs, sanitize.Replace(msg))
}

// Run performs the check, writes one line to w and returns the exit code.
func Run(ctx context.Context, o Options, w io.Writer) int {
	if o.URL == "" {
		o.URL = "http://127.0.0.1:8080"
	}
	o.URL = strings.TrimRight(o.URL, "/")
	if o.DiskWarnPct == 0 {
		o.DiskWarnPct = 15
	}
	if o.DiskCritPct == 0 {
		o.DiskCritPct = 5
	}
	if o.RecentFault == 0 {
		o.RecentFault = 15 * time.Minute
	}
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
	r := evaluate(ctx, o)
	line := "MOH " + stateNames[r.code] + " - " + strings.Join(r.msgs, "; ")
	if len(r.perf) > 0 {
		line += " | " + strings.Join(r.perf, " ")
	}
	fmt.Fprintln(w, line)
	return r.code
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

func evaluate(ctx context.Context, o Options) result {
	var r result
	code, body, err := get(ctx, o.Client, o.URL+"/healthz")
	if err != nil {
		r.raise(Critical, fmt.Sprintf("mohd not answering at %s: %v", o.URL, err))
		return r
	}
	var h health
	if code != http.StatusOK && code != http.StatusServiceUnavailable || json.Unmarshal(body, &h) != nil {
		r.raise(Unknown, fmt.Sprintf("unexpected /healthz answer: HTTP %d", code))
		return r
	}
	code, body, err = get(ctx, o.Client, o.URL+"/metrics")
	var m samples
	metricsOK := err == nil && code == http.StatusOK
	if metricsOK {
		m = parse(string(body))
	}

	// The box's own verdict is the floor of the answer: the check adds
	// only the thresholds its caller configured (disk, recent faults).
	why := h.Reason
	if h.Silent {
		why = "callers hear silence: " + why
	}
	switch h.State {
	case "ok":
		r.raise(OK, why)
	case "warning":
		r.raise(Warning, why)
	case "critical":
		r.raise(Critical, why)
	default:
		r.raise(Unknown, fmt.Sprintf("unexpected health state %q from /healthz", h.State))
	}
	if !metricsOK {
		if err == nil {
			err = fmt.Errorf("HTTP %d", code)
		}
		r.raise(Unknown, fmt.Sprintf("cannot read /metrics: %v", err))
		return r
	}

	if free, ok := m.get("moh_disk_free_bytes", nil); ok {
		total, _ := m.get("moh_disk_total_bytes", nil)
		if total > 0 {
			pct := 100 * free / total
			switch {
			case pct < o.DiskCritPct:
				r.raise(Critical, fmt.Sprintf("disk %.1f%% free (%s)", pct, human(free)))
			case pct < o.DiskWarnPct:
				r.raise(Warning, fmt.Sprintf("disk nearly full: %.1f%% free (%s)", pct, human(free)))
			}
			// "15:" is Nagios' range for "alert below 15".
			r.perf = append(r.perf, fmt.Sprintf("disk_free=%.1f%%;%g:;%g:;0;100", pct, o.DiskWarnPct, o.DiskCritPct))
		}
	}
	if v, ok := m.get("moh_disk_error", nil); ok && v == 1 {
		r.raise(Warning, "cannot read free disk space")
	}
	// The box itself warns for a while after a recovery; a longer
	// --recent-fault keeps warning beyond that.
	if ts, labels, ok := m.first("moh_watchdog_last_fault_timestamp_seconds"); ok && h.State == "ok" {
		at := time.Unix(0, int64(ts*1e9))
		if age := o.Now().Sub(at); age < o.RecentFault {
			r.raise(Warning, fmt.Sprintf("watchdog recovered from %q %s ago", labels["fault"], age.Round(time.Second)))
		}
	}

	if v, ok := m.get("moh_output_level_dbfs", nil); ok {
		r.perf = append(r.perf, fmt.Sprintf("level=%.1fdB", v))
	}
	r.perf = append(r.perf, fmt.Sprintf("recoveries=%.0fc", m.sum("moh_watchdog_recoveries_total")))
	r.perf = append(r.perf, fmt.Sprintf("faults=%.0fc", m.sum("moh_watchdog_faults_total")))
	if v, ok := m.get("moh_uptime_seconds", nil); ok {
		r.perf = append(r.perf, fmt.Sprintf("uptime=%.0fs", v))
	}
	if v, ok := m.get("moh_volume", nil); ok {
		r.perf = append(r.perf, fmt.Sprintf("volume=%.0f;;;0;100", v))
	}
	return r
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
