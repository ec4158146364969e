package player

import (
	"strings"
	"testing"
	"time"
)

func TestAssessHealth(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	playing := Status{BackendStatus: BackendStatus{State: StatePlaying}, Wanted: StatePlaying, Volume: 80, PlaylistLength: 3}
	with := func(f func(*Status)) Status { s := playing; f(&s); return s }
	for _, tc := range []struct {
		name     string
		st       Status
		flowing  bool
		degraded []string
		state    HealthState
		silent   bool
		reason   string
	}{
		{"playing", playing, true, nil, HealthOK, false, "audio flowing"},
		{"admin stop", with(func(s *Status) { s.Wanted, s.State = StateStopped, StateStopped }), false, nil, HealthWarning, true, "stopped by the admin"},
		{"admin stop beats a degraded part", with(func(s *Status) { s.Wanted = StateStopped }), false, []string{"disk nearly full"}, HealthWarning, true, "stopped by the admin"},
		{"volume 0", with(func(s *Status) { s.Volume = 0 }), true, nil, HealthWarning, true, "volume is 0"},
		{"backend fault", with(func(s *Status) { s.State, s.Fault = StateFailed, Fault{Class: FaultSinkFailed, Detail: "no card"} }), false, nil, HealthCritical, true, "sink-failed: no card"},
		{"watchdog fault", with(func(s *Status) { s.Watchdog.Fault = FaultStalled }), false, nil, HealthCritical, true, "stalled"},
		{"starting", with(func(s *Status) { s.State = StateStarting }), false, nil, HealthCritical, true, "starting"},
		{"fault beats volume 0", with(func(s *Status) { s.Volume = 0 }), false, nil, HealthCritical, true, "no audio"},
		{"disk low", playing, true, []string{"disk nearly full: 10 MiB free"}, HealthWarning, false, "disk nearly full"},
		{"two degraded parts", playing, true, []string{"disk nearly full", "fleet link down"}, HealthWarning, false, "disk nearly full; fleet link down"},
		{"every track refused", with(func(s *Status) { s.Fallback = true }), true, nil, HealthWarning, false, "every one of the 3 tracks"},
		{"empty library plays the built-in track", with(func(s *Status) { s.Fallback, s.PlaylistLength = true, 0 }), true, nil, HealthOK, false, "audio flowing"},
		{"recent recovery", with(func(s *Status) { s.Watchdog.LastFault = &Event{Time: now.Add(-3 * time.Minute), Fault: FaultStalled} }), true, nil, HealthWarning, false, "recovered from stalled 3m0s ago"},
		{"old recovery", with(func(s *Status) {
			s.Watchdog.LastFault = &Event{Time: now.Add(-RecentRecoveryWindow), Fault: FaultStalled}
		}), true, nil, HealthOK, false, "audio flowing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := AssessHealth(tc.st, tc.flowing, tc.degraded, now)
			if h.State != tc.state || h.Silent != tc.silent || !strings.Contains(h.Reason, tc.reason) {
				t.Errorf("got %+v, want state %s silent %v reason containing %q", h, tc.state, tc.silent, tc.reason)
			}
		})
	}
}

func TestHealthCodes(t *testing.T) {
	for s, want := range map[HealthState]int{HealthOK: 0, HealthWarning: 1, HealthCritical: 2, "": 2} {
		if got := s.Code(); got != want {
			t.Errorf("%q.Code() = %d, want %d", s, got, want)
		}
	}
}
