package player

import (
	"fmt"
	"strings"
	"time"
)

// HealthState is the one answer every signal gives about the line: the
// HTTP health check, the status document, `mohd check`, /metrics, the
// fleet link, mohctl and the page all derive theirs from a Health value
// computed by AssessHealth, so they can never disagree.
type HealthState string

const (
	// HealthOK: audio reaches the output.
	HealthOK HealthState = "ok"
	// HealthWarning: silent on purpose (the admin stopped playback or set
	// the volume to 0), or playing but degraded (disk low, fleet link
	// down, every track refused, a recent recovery).
	HealthWarning HealthState = "warning"
	// HealthCritical: silent by fault — playback is wanted and no audio
	// reaches the output.
	HealthCritical HealthState = "critical"
)

// Code is the state as Nagios, `moh_health_state` and mohctl's exit
// status count it: 0 ok, 1 warning, 2 critical.
func (s HealthState) Code() int {
	switch s {
	case HealthOK:
		return 0
	case HealthWarning:
		return 1
	}
	return 2
}

// Health is the line's state with the sentence a person reads.
type Health struct {
	State  HealthState `json:"state"`
	Reason string      `json:"reason"`
	// Silent is true while callers hear silence (an admin stop, volume 0,
	// or a fault); a degraded warning plays on.
	Silent bool `json:"silent"`
}

// RecentRecoveryWindow is how long after a watchdog fault the health stays
// a warning although audio is back, so a flapping box gets noticed.
const RecentRecoveryWindow = 15 * time.Minute

// AssessHealth is the health model. flowing is whether audio reaches the
// output now (the watchdog's verdict); degraded lists problems beside the
// player that do not silence the line (disk nearly full, fleet link
// down). The order of the checks is the order of what matters most to a
// caller: a fault outranks an intended silence, which outranks a degraded
// part.
func AssessHealth(st Status, flowing bool, degraded []string, now time.Time) Health {
	if st.Wanted != StatePlaying {
		return Health{HealthWarning, "stopped by the admin, until someone presses Play", true}
	}
	if !flowing {
		return Health{HealthCritical, silenceReason(st), true}
	}
	outputsDown := downOutputs(st.Outputs)
	if len(st.Outputs) > 0 && len(outputsDown) == len(st.Outputs) {
		return Health{HealthCritical, "no output carries audio: " + strings.Join(outputsDown, "; "), true}
	}
	if st.Volume == 0 {
		return Health{HealthWarning, "the volume is 0", true}
	}
	var why []string
	if st.Fallback && st.PlaylistLength > 0 {
		why = append(why, fmt.Sprintf("every one of the %d tracks was refused: the built-in track plays", st.PlaylistLength))
	}
	why = append(why, outputsDown...)
	for _, d := range degraded {
		if d != "" {
			why = append(why, d)
		}
	}
	if lf := st.Watchdog.LastFault; lf != nil && !lf.Time.IsZero() && now.Sub(lf.Time) < RecentRecoveryWindow {
		why = append(why, fmt.Sprintf("recovered from %s %s ago", lf.Fault, now.Sub(lf.Time).Round(time.Second)))
	}
	if len(why) > 0 {
		return Health{HealthWarning, strings.Join(why, "; "), false}
	}
	return Health{HealthOK, "audio flowing", false}
}

// silenceReason says why a wanted line is silent, most specific first.
func silenceReason(st Status) string {
	switch {
	case !st.Fault.IsZero():
		return "no audio: " + st.Fault.String()
	case st.Watchdog.Fault != "":
		return "no audio: " + string(st.Watchdog.Fault) + " (the watchdog is recovering)"
	case st.State == StateStarting || st.Watchdog.State == WatchdogStarting || st.Watchdog.State == watchdogStoppedRun:
		return "starting: no audio verified yet"
	case st.State != StatePlaying:
		return fmt.Sprintf("no audio: the player is %s", st.State)
	}
	return "no audio reaches the output"
}

// downOutputs describes each output that carries no audio now: one of
// several down is a degraded line, all of them a silent one.
func downOutputs(outs []OutputStatus) []string {
	var down []string
	for _, o := range outs {
		if o.Up() {
			continue
		}
		d := fmt.Sprintf("output %s %s %s", o.Kind, o.Target, o.State)
		if o.Target == "" {
			d = fmt.Sprintf("output %s %s", o.Kind, o.State)
		}
		if o.LastError != "" {
			d += ": " + o.LastError
		}
		down = append(down, d)
	}
	return down
}
