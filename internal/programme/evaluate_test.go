package programme

import (
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func at(t *testing.T, zone, s string) time.Time {
	t.Helper()
	tt, err := time.ParseInLocation("2006-01-02 15:04", s, mustLoc(t, zone))
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

var business = Schedule{
	Timezone: "Europe/Paris",
	Default:  "default",
	Rules: []Rule{
		{Name: "business-hours", Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "08:00", To: "18:00", Playlist: "business"},
		{Name: "night", Days: []string{"fri"}, From: "22:00", To: "06:00", Playlist: "night"},
		{Name: "lunch", Days: []string{"wed"}, From: "12:00", To: "13:00", Playlist: "lunch"},
	},
	Exceptions: []Exception{
		{Name: "christmas", From: "2026-12-24", To: "2026-12-26", Yearly: true, Playlist: "closed"},
		{Name: "new-year", From: "2026-12-31", To: "2027-01-01", Yearly: true, Playlist: "closed"},
		{Name: "strike", From: "2026-12-01", To: "2026-12-31", Playlist: "strike"},
	},
}

func TestEvaluateWeekly(t *testing.T) {
	const z = "Europe/Paris"
	for _, c := range []struct {
		now, playlist, reason, rule, next, nextPlaylist string
	}{
		// 2026-11-02 is a Monday.
		{"2026-11-02 07:59", "default", ReasonDefault, "", "2026-11-02 08:00", "business"},
		{"2026-11-02 08:00", "business", ReasonRule, "business-hours (Mon–Fri 08:00–18:00)", "2026-11-02 18:00", "default"},
		{"2026-11-02 17:59", "business", ReasonRule, "business-hours (Mon–Fri 08:00–18:00)", "2026-11-02 18:00", "default"},
		{"2026-11-02 18:00", "default", ReasonDefault, "", "2026-11-03 08:00", "business"},
		// The narrower lunch rule wins inside business hours.
		{"2026-11-04 12:30", "lunch", ReasonRule, "lunch (Wed 12:00–13:00)", "2026-11-04 13:00", "business"},
		// Friday night spans midnight into Saturday.
		{"2026-11-06 21:00", "default", ReasonDefault, "", "2026-11-06 22:00", "night"},
		{"2026-11-06 23:59", "night", ReasonRule, "night (Fri 22:00–06:00)", "2026-11-07 06:00", "default"},
		{"2026-11-07 05:59", "night", ReasonRule, "night (Fri 22:00–06:00)", "2026-11-07 06:00", "default"},
		// Weekend: the next change is Monday 08:00.
		{"2026-11-07 06:00", "default", ReasonDefault, "", "2026-11-09 08:00", "business"},
	} {
		t.Run(c.now, func(t *testing.T) {
			s := business
			s.Exceptions = nil
			p := Evaluate(s, nil, at(t, z, c.now))
			if p.Playlist != c.playlist || p.Reason != c.reason || p.Rule != c.rule {
				t.Fatalf("got %+v, want %s/%s/%q", p, c.playlist, c.reason, c.rule)
			}
			if p.NextChange == nil || !p.NextChange.Equal(at(t, z, c.next)) || p.NextPlaylist != c.nextPlaylist {
				t.Fatalf("next %v %q, want %s %q", p.NextChange, p.NextPlaylist, c.next, c.nextPlaylist)
			}
		})
	}
}

func TestEvaluateExceptions(t *testing.T) {
	const z = "Europe/Paris"
	for _, c := range []struct{ now, playlist, rule, next, nextPlaylist string }{
		// The month-long strike is less specific than Christmas.
		{"2026-12-23 10:00", "strike", "strike (2026-12-01–2026-12-31)", "2026-12-24 00:00", "closed"},
		{"2026-12-24 00:00", "closed", "christmas (2026-12-24–2026-12-26, yearly)", "2026-12-27 00:00", "strike"},
		// Yearly: the next years too, and no strike then.
		{"2027-12-25 09:00", "closed", "christmas (2026-12-24–2026-12-26, yearly)", "2027-12-27 00:00", "default"},
		{"2030-12-26 23:59", "closed", "christmas (2026-12-24–2026-12-26, yearly)", "2030-12-27 00:00", "default"},
		// A yearly range across new year.
		{"2028-01-01 12:00", "closed", "new-year (2026-12-31–2027-01-01, yearly)", "2028-01-02 00:00", "default"},
	} {
		t.Run(c.now, func(t *testing.T) {
			p := Evaluate(business, nil, at(t, z, c.now))
			if p.Playlist != c.playlist || p.Reason != ReasonException || p.Rule != c.rule {
				t.Fatalf("got %+v, want %s %q", p, c.playlist, c.rule)
			}
			if p.NextChange == nil || !p.NextChange.Equal(at(t, z, c.next)) || p.NextPlaylist != c.nextPlaylist {
				t.Fatalf("next %v %q, want %s %q", p.NextChange, p.NextPlaylist, c.next, c.nextPlaylist)
			}
		})
	}
}

func TestEvaluateOverride(t *testing.T) {
	now := at(t, "Europe/Paris", "2026-11-02 10:00")
	until := now.Add(30 * time.Minute)
	o := &Override{Playlist: "closed", Until: &until}
	p := Evaluate(business, o, now)
	if p.Reason != ReasonOverride || p.Playlist != "closed" || p.NextChange == nil || !p.NextChange.Equal(until) || p.NextPlaylist != "business" {
		t.Fatalf("override: %+v", p)
	}
	if p := Evaluate(business, o, until); p.Reason != ReasonRule || p.Playlist != "business" {
		t.Fatalf("an expired override still plays: %+v", p)
	}
	tr := &Override{Track: "t1"}
	if p := Evaluate(business, tr, now); p.Reason != ReasonOverride || p.Track != "t1" || p.NextChange != nil {
		t.Fatalf("track override without end: %+v", p)
	}
}

// dstCase is a rule edge on a DST transition day; want is the UTC instant
// of the one switch.
func TestEvaluateDST(t *testing.T) {
	for _, c := range []struct {
		name, zone, day, from, to string
		before, after             time.Time // instants just around the switch
		wantStart                 time.Time
	}{
		// Paris springs forward 2027-03-28 at 02:00 CET (01:00 UTC) to
		// 03:00 CEST: a rule from 02:30 starts at the jump.
		{"paris spring 02:30", "Europe/Paris", "sun", "02:30", "05:00",
			ts("2027-03-28T00:59:59Z"), ts("2027-03-28T01:00:00Z"), ts("2027-03-28T01:00:00Z")},
		// London springs forward 2027-03-28 at 01:00 GMT to 02:00 BST.
		{"london spring 01:30", "Europe/London", "sun", "01:30", "05:00",
			ts("2027-03-28T00:59:59Z"), ts("2027-03-28T01:00:00Z"), ts("2027-03-28T01:00:00Z")},
		// Paris falls back 2026-10-25 at 03:00 CEST (01:00 UTC) to 02:00
		// CET: 02:30 happens twice; the rule starts at the first.
		{"paris fall 02:30", "Europe/Paris", "sun", "02:30", "05:00",
			ts("2026-10-25T00:29:59Z"), ts("2026-10-25T00:30:00Z"), ts("2026-10-25T00:30:00Z")},
		// London falls back 2026-10-25 at 02:00 BST (01:00 UTC) to 01:00 GMT.
		{"london fall 01:30", "Europe/London", "sun", "01:30", "05:00",
			ts("2026-10-25T00:29:59Z"), ts("2026-10-25T00:30:00Z"), ts("2026-10-25T00:30:00Z")},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := Schedule{Timezone: c.zone, Default: "default",
				Rules: []Rule{{Name: "early", Days: []string{c.day}, From: c.from, To: c.to, Playlist: "early"}}}
			// The day before, next_change points at the one switch.
			p := Evaluate(s, nil, c.before.Add(-20*time.Hour))
			if p.NextChange == nil || !p.NextChange.Equal(c.wantStart) {
				t.Fatalf("next change %v, want %v", p.NextChange, c.wantStart)
			}
			if p := Evaluate(s, nil, c.before); p.Playlist != "default" {
				t.Fatalf("before the switch: %+v", p)
			}
			p = Evaluate(s, nil, c.after)
			if p.Playlist != "early" {
				t.Fatalf("after the switch: %+v", p)
			}
			// It ends once at 05:00 local and does not start again in the
			// repeated hour.
			end := wallInstant(mustLoc(t, c.zone), civil{c.after.In(mustLoc(t, c.zone)).Year(), c.after.In(mustLoc(t, c.zone)).Month(), c.after.In(mustLoc(t, c.zone)).Day()}, 5*60)
			if p.NextChange == nil || !p.NextChange.Equal(end) {
				t.Fatalf("end %v, want %v", p.NextChange, end)
			}
			switches := 0
			prev := Evaluate(s, nil, c.before.Add(-3*time.Hour)).Playlist
			for tt := c.before.Add(-3 * time.Hour); tt.Before(c.before.Add(8 * time.Hour)); tt = tt.Add(time.Minute) {
				if pl := Evaluate(s, nil, tt).Playlist; pl != prev {
					switches++
					prev = pl
				}
			}
			if switches != 2 {
				t.Fatalf("%d switches over the transition, want 2 (on, off)", switches)
			}
		})
	}
}

// A rule across the fall-back hour lasts its wall-clock width plus the
// repeated hour, and no second window opens inside it.
func TestEvaluateFallBackNotDoubled(t *testing.T) {
	s := Schedule{Timezone: "Europe/London", Default: "default",
		Rules: []Rule{{Days: []string{"sun"}, From: "01:15", To: "01:45", Playlist: "short"}}}
	on := 0
	for tt := ts("2026-10-24T23:00:00Z"); tt.Before(ts("2026-10-25T04:00:00Z")); tt = tt.Add(time.Minute) {
		if Evaluate(s, nil, tt).Playlist == "short" {
			on++
		}
	}
	if on != 30 {
		t.Fatalf("the rule played %d minutes on fall-back day, want 30 (once)", on)
	}
}

// A box moved to another zone re-reads the same rules in its new local
// time.
func TestEvaluateZoneChange(t *testing.T) {
	now := ts("2026-11-02T07:30:00Z") // 08:30 Paris, 07:30 London
	s := business
	if p := Evaluate(s, nil, now); p.Playlist != "business" {
		t.Fatalf("paris: %+v", p)
	}
	s.Timezone = "Europe/London"
	p := Evaluate(s, nil, now)
	if p.Playlist != "default" || p.NextChange == nil || !p.NextChange.Equal(ts("2026-11-02T08:00:00Z")) {
		t.Fatalf("london: %+v", p)
	}
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
