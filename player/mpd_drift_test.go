package player

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fhs/gompd/v2/mpd"
)

// driftBound is how soon mohd must undo another client's change to MPD's
// player state (issue 10).
const driftBound = 5 * time.Second

// mpdSay sends commands over the raw MPD protocol, as mpc or a phone app
// would, on one connection of its own, and fails on anything but OK.
func mpdSay(t testing.TB, network, addr string, commands ...string) {
	t.Helper()
	conn, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial mpd: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	greeting, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, "OK MPD ") {
		t.Fatalf("mpd greeting %q: %v", greeting, err)
	}
	for _, command := range commands {
		if _, err := fmt.Fprintf(conn, "%s\n", command); err != nil {
			t.Fatalf("send %q: %v", command, err)
		}
	reply:
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%q: %v", command, err)
			}
			switch {
			case line == "OK\n":
				break reply
			case strings.HasPrefix(line, "ACK "):
				t.Fatalf("%q: mpd refused: %s", command, strings.TrimSpace(line))
			}
		}
	}
}

func (f *mpdFixture) say(t testing.TB, commands ...string) {
	t.Helper()
	mpdSay(t, "unix", filepath.Join(f.dir, "run", mpdSocketName), commands...)
}

// mpdStateDrift is the test's own oracle of what mohd wants MPD's player
// state to be: every output enabled, repeat on, single, random and
// consume off, no crossfade, and the queue exactly the playlist. It
// returns what differs, "" when nothing does.
func mpdStateDrift(c *mpd.Client, tracks []Track) (string, error) {
	st, err := c.Status()
	if err != nil {
		return "", err
	}
	var drift []string
	for k, v := range map[string]string{"repeat": "1", "single": "0", "random": "0", "consume": "0"} {
		if st[k] != v {
			drift = append(drift, fmt.Sprintf("%s=%s", k, st[k]))
		}
	}
	if x := st["xfade"]; x != "" && x != "0" {
		drift = append(drift, "xfade="+x)
	}
	outs, err := c.ListOutputs()
	if err != nil {
		return "", err
	}
	if len(outs) != 2 {
		drift = append(drift, fmt.Sprintf("%d outputs", len(outs)))
	}
	for _, o := range outs {
		switch {
		case o["plugin"] == "dummy": // what MPD leaves when an output moves to another partition
			drift = append(drift, "output "+o["outputname"]+" moved away")
		case o["outputenabled"] != "1":
			drift = append(drift, "output "+o["outputname"]+" disabled")
		}
	}
	items, err := c.PlaylistInfo(-1, -1)
	if err != nil {
		return "", err
	}
	same := len(items) == len(tracks)
	for i := 0; same && i < len(items); i++ {
		same = items[i]["file"] == tracks[i].Path
	}
	if !same {
		drift = append(drift, fmt.Sprintf("queue of %d entries", len(items)))
	}
	return strings.Join(drift, ", "), nil
}

// Another client changes MPD's player state behind mohd's back, with the
// MPD protocol itself: each change is undone within 5 s, the watchdog
// records it as a fault event of the named class and a recovery, and
// audio flows again.
func TestMPDDriftIsHealed(t *testing.T) {
	cases := []struct {
		name     string
		commands []string
		class    FaultClass
	}{
		{"output-disabled", []string{"disableoutput 0"}, "mpd-output"},
		{"level-output-disabled", []string{"disableoutput 1"}, "mpd-output"},
		{"output-moved-to-partition", []string{"newpartition other", "partition other", "moveoutput " + mpdOutputName}, "mpd-output"},
		{"single", []string{"single 1"}, "mpd-options"},
		{"consume", []string{"consume 1"}, "mpd-options"},
		{"random", []string{"random 1"}, "mpd-options"},
		{"repeat-off", []string{"repeat 0"}, "mpd-options"},
		{"crossfade", []string{"crossfade 5"}, "mpd-options"},
		{"queue-cleared", []string{"clear"}, "mpd-queue"},
		{"queue-entry-deleted", []string{"delete 1"}, "mpd-queue"},
		{"queue-entry-added", []string{`add "file://{track0}"`}, "mpd-queue"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has its own MPD
			// mohd's own intervals (MPD poll and watchdog step 500 ms), so
			// the times logged are the appliance's.
			f, s := newSupervisedMPD(t, MPDOptions{}, WatchdogOptions{Interval: 500 * time.Millisecond}, 2)
			pollUntil(t, 20*time.Second, "healthy audio before the drift", s.w.Healthy)
			c := f.client(t)
			if d, err := mpdStateDrift(c, f.tracks); err != nil || d != "" {
				t.Fatalf("mpd state before the drift: %q, %v", d, err)
			}
			var commands []string
			for _, cmd := range tc.commands {
				commands = append(commands, strings.ReplaceAll(cmd, "{track0}", f.tracks[0].Path))
			}
			start := time.Now()
			f.say(t, commands...)
			var healed time.Duration
			for d := "?"; d != ""; time.Sleep(20 * time.Millisecond) {
				var err error
				if d, err = mpdStateDrift(c, f.tracks); err != nil {
					t.Fatalf("read mpd state: %v", err)
				}
				if healed = time.Since(start); healed > driftBound {
					t.Fatalf("mpd state not restored %v after %q: %s", driftBound, tc.commands, d)
				}
			}
			var fault, recovered *Event
			pollUntil(t, driftBound-healed, "fault and recovery events", func() bool {
				fault, recovered = nil, nil
				for _, e := range s.events.Recent(100) {
					if e.Time.Before(start) || e.Fault != tc.class {
						continue
					}
					switch e.Kind {
					case "fault":
						fault = &e
					case "recovered":
						recovered = &e
					}
				}
				return fault != nil && recovered != nil
			})
			if fault.Message == "" || !strings.HasPrefix(fault.Message, string(tc.class)+": ") {
				t.Errorf("fault event message %q does not say what drifted", fault.Message)
			}
			probe := &mpdFlowProbe{b: f.m}
			pollUntil(t, driftBound, "audio flowing again", func() bool {
				time.Sleep(100 * time.Millisecond)
				return s.w.Healthy() && probe.flowing()
			})
			t.Logf("%s: state restored in %v; event %q; recovered in %d ms by %s",
				tc.name, healed.Round(time.Millisecond), fault.Message, recovered.RecoveryMS, recovered.Rung)
			if st := f.m.Status(); !st.Fault.IsZero() {
				t.Errorf("fault still reported after healing: %q", st.Fault)
			}
		})
	}
}

// While a configured output (or mohd's own level output) is disabled, the
// backend reports a fault, so nothing calls it "audio flowing" although
// the level output still hears the music; the replay rung re-enables it.
// No watchdog runs here, so nothing heals the drift before the test has
// looked at it.
func TestMPDOutputDisabledIsAFault(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   int
		out  string
	}{
		{"line-output", 0, mpdOutputName},
		{"level-output", 1, mpdLevelOutputName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newMPDFixture(t, MPDOptions{}, 2)
			probe := &mpdFlowProbe{b: f.m}
			pollUntil(t, 15*time.Second, "audio", func() bool { time.Sleep(100 * time.Millisecond); return probe.flowing() })
			f.say(t, fmt.Sprintf("disableoutput %d", tc.id))
			pollUntil(t, driftBound, "fault reported", func() bool {
				return f.m.Status().Fault.Class == FaultMPDOutput
			})
			st := f.m.Status()
			if !strings.Contains(st.Fault.Detail, `"`+tc.out+`"`) {
				t.Errorf("fault %q does not name output %q", st.Fault, tc.out)
			}
			// The fault lasts while the output stays disabled.
			for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
				time.Sleep(100 * time.Millisecond)
				if probe.flowing() {
					t.Fatalf("audio counted as flowing with output %s disabled: %+v", tc.out, f.m.Status())
				}
				if st := f.m.Status(); st.Fault.Class != FaultMPDOutput {
					t.Fatalf("fault cleared while output %s is still disabled: %q", tc.out, st.Fault)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := f.m.Recover(ctx, RungReplay); err != nil {
				t.Fatalf("replay: %v", err)
			}
			if d, err := mpdStateDrift(f.client(t), f.tracks); err != nil || d != "" {
				t.Fatalf("after replay mpd state differs: %q, %v", d, err)
			}
			pollUntil(t, driftBound, "audio flowing after the replay", func() bool {
				time.Sleep(100 * time.Millisecond)
				return probe.flowing()
			})
		})
	}
}

// While the admin has stopped playback the watchdog stands down, so the
// backend itself puts back what another client changed: Play then starts
// the right loop on the line.
func TestMPDDriftHealedWhileStopped(t *testing.T) {
	f := newMPDFixture(t, MPDOptions{}, 2)
	probe := &mpdFlowProbe{b: f.m}
	pollUntil(t, 15*time.Second, "audio", func() bool { time.Sleep(100 * time.Millisecond); return probe.flowing() })
	f.m.Stop()
	pollUntil(t, driftBound, "stopped", func() bool { st := f.m.Status(); return st.State == StateStopped && st.Fault.IsZero() })
	c := f.client(t)
	for _, tc := range []struct {
		name     string
		commands []string
	}{
		{"output-disabled", []string{"disableoutput 0"}},
		{"options", []string{"single 1", "random 1", "consume 1", "repeat 0", "crossfade 3"}},
		{"queue-cleared", []string{"clear"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			f.say(t, tc.commands...)
			for d := "?"; d != ""; time.Sleep(20 * time.Millisecond) {
				var err error
				if d, err = mpdStateDrift(c, f.tracks); err != nil {
					t.Fatalf("read mpd state: %v", err)
				}
				if time.Since(start) > driftBound {
					t.Fatalf("mpd state not restored %v after %q: %s", driftBound, tc.commands, d)
				}
			}
			if st, err := c.Status(); err != nil || st["state"] != "stop" {
				t.Fatalf("healing the drift started playback: %v, %v", st, err)
			}
			t.Logf("%s: restored in %v while stopped", tc.name, time.Since(start).Round(time.Millisecond))
		})
	}
	f.m.Play()
	pollUntil(t, driftBound, "playing after Play", func() bool { time.Sleep(100 * time.Millisecond); return probe.flowing() })
}

// A line output MPD cannot open (no such card) leaves MPD playing into
// mohd's level output alone, with nothing in its status: the backend
// still reports the fault, from MPD's log.
func TestMPDLineOutputFailedIsAFault(t *testing.T) {
	f := newMPDFixture(t, MPDOptions{Output: Output{Kind: OutputALSA, Device: "hw:9,0"}}, 1)
	var st BackendStatus
	pollUntil(t, 15*time.Second, "line output fault", func() bool {
		st = f.m.Status()
		return st.Fault.Class == FaultSinkFailed && strings.Contains(st.Fault.Detail, "hw:9,0")
	})
	t.Logf("fault: %s (level output: %.0f dBFS, %d frames)", st.Fault, st.LevelDBFS, st.Frames)
	probe := &mpdFlowProbe{b: f.m}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		if probe.flowing() {
			t.Fatalf("audio counted as flowing into a line output MPD cannot open: %+v", f.m.Status())
		}
	}
}
