package check

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Thresholds are what the check's caller adds to the box's own verdict.
// Zero values take the defaults in brackets.
type Thresholds struct {
	// DiskWarnPct and DiskCritPct: free space on the library's file
	// system below these percentages is a WARNING / CRITICAL (15, 5).
	DiskWarnPct, DiskCritPct float64
	// RecentFault: a watchdog fault this recent is a WARNING even though
	// audio is back (15 min), so flapping boxes get noticed.
	RecentFault time.Duration
}

func (t Thresholds) withDefaults() Thresholds {
	if t.DiskWarnPct == 0 {
		t.DiskWarnPct = 15
	}
	if t.DiskCritPct == 0 {
		t.DiskCritPct = 5
	}
	if t.RecentFault == 0 {
		t.RecentFault = 15 * time.Minute
	}
	return t
}

// Input is what a verdict is computed from, whichever way it was read:
// mohd's /healthz and /metrics (mohd check) or the box's status document
// on the broker (mohctl check, FromStatus). One evaluator over one input
// keeps the two checks' thresholds and perfdata the same.
type Input struct {
	// From names where Health came from, for a message about an odd
	// health state ("/healthz").
	From   string
	Health Health
	// Unreadable, if set, says why nothing beyond Health is known: the
	// verdict is then the box's own plus an UNKNOWN with this message.
	Unreadable string
	// Disk is the library's file system; nil when the box reports none.
	Disk *Disk
	// DiskError: the box could not read its free space.
	DiskError bool
	// LastFault is when the watchdog last saw a fault (zero: none since
	// start), of class LastFaultClass.
	LastFault      time.Time
	LastFaultClass string
	// Recoveries and Faults are the watchdog's totals since start.
	Recoveries, Faults float64
	// Level (dBFS), Uptime (seconds) and Volume (0..100) are left out of
	// the perfdata when nil.
	Level, Uptime, Volume *float64
}

// Disk is free and total bytes.
type Disk struct{ Free, Total float64 }

// Result is one verdict: the exit code, the messages and the perfdata.
type Result struct {
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

func (r *Result) raise(code int, msg string) {
	if severity[code] > severity[r.code] {
		r.code = code
	}
	r.msgs = append(r.msgs, sanitize.Replace(msg))
}

// Fail is a verdict reached without reading the box (it does not answer,
// its status is stale...): one message, no perfdata.
func Fail(code int, msg string) Result {
	var r Result
	r.raise(code, msg)
	return r
}

// Code is the Nagios exit code.
func (r Result) Code() int { return r.code }

// Line is the plugin's output line, without its newline: "MOH STATE -
// messages | perfdata", with '|' at most once.
func (r Result) Line() string {
	line := "MOH " + stateNames[r.code] + " - " + strings.Join(r.msgs, "; ")
	if len(r.perf) > 0 {
		line += " | " + strings.Join(r.perf, " ")
	}
	return line
}

// Write prints the line to w and returns the exit code.
func (r Result) Write(w io.Writer) int {
	fmt.Fprintln(w, r.Line())
	return r.code
}

// Evaluate judges in against t at now.
func Evaluate(in Input, t Thresholds, now time.Time) Result {
	t = t.withDefaults()
	var r Result
	h := in.Health
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
		from := in.From
		if from == "" {
			from = "the box"
		}
		r.raise(Unknown, fmt.Sprintf("unexpected health state %q from %s", h.State, from))
	}
	if in.Unreadable != "" {
		r.raise(Unknown, in.Unreadable)
		return r
	}

	if d := in.Disk; d != nil && d.Total > 0 {
		pct := 100 * d.Free / d.Total
		switch {
		case pct < t.DiskCritPct:
			r.raise(Critical, fmt.Sprintf("disk %.1f%% free (%s)", pct, human(d.Free)))
		case pct < t.DiskWarnPct:
			r.raise(Warning, fmt.Sprintf("disk nearly full: %.1f%% free (%s)", pct, human(d.Free)))
		}
		// "15:" is Nagios' range for "alert below 15".
		r.perf = append(r.perf, fmt.Sprintf("disk_free=%.1f%%;%g:;%g:;0;100", pct, t.DiskWarnPct, t.DiskCritPct))
	}
	if in.DiskError {
		r.raise(Warning, "cannot read free disk space")
	}
	// The box itself warns for a while after a recovery; a longer
	// --recent-fault keeps warning beyond that.
	if !in.LastFault.IsZero() && h.State == "ok" {
		if age := now.Sub(in.LastFault); age < t.RecentFault {
			r.raise(Warning, fmt.Sprintf("watchdog recovered from %q %s ago", in.LastFaultClass, age.Round(time.Second)))
		}
	}

	if in.Level != nil {
		r.perf = append(r.perf, fmt.Sprintf("level=%.1fdB", *in.Level))
	}
	r.perf = append(r.perf, fmt.Sprintf("recoveries=%.0fc", in.Recoveries))
	r.perf = append(r.perf, fmt.Sprintf("faults=%.0fc", in.Faults))
	if in.Uptime != nil {
		r.perf = append(r.perf, fmt.Sprintf("uptime=%.0fs", *in.Uptime))
	}
	if in.Volume != nil {
		r.perf = append(r.perf, fmt.Sprintf("volume=%.0f;;;0;100", *in.Volume))
	}
	return r
}
