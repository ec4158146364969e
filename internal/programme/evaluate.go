package programme

import (
	"sort"
	"time"
)

// horizon bounds how far ahead next_change is looked for: a year and a
// day covers every yearly exception.
const horizonDays = 367

// Evaluate is what plays at now and what comes next: a pure function of
// the schedule, the override (nil: none) and the instant. The most
// specific wins: an active override, then an exception (the shorter
// range; equal ranges: the one listed first), then a weekly rule (the
// narrower window; equally narrow rules may not overlap, see Validate),
// then the default. A schedule that does not compile (it never reaches
// the store) plays its default.
func Evaluate(s Schedule, o *Override, now time.Time) Programme {
	c, err := compile(s)
	if err != nil {
		p := Programme{Playlist: s.Default, Reason: ReasonDefault}
		if o.Active(now) {
			p = overrideProgramme(o)
		}
		return p
	}
	return c.evaluate(o, now)
}

func overrideProgramme(o *Override) Programme {
	p := Programme{Reason: ReasonOverride, Playlist: o.Playlist, Track: o.Track}
	if o.Track != "" {
		p.Rule = "override: track " + o.Track
	} else {
		p.Rule = "override: playlist " + o.Playlist
	}
	if o.Until != nil {
		p.Rule += " until " + o.Until.Format(time.RFC3339)
	}
	return p
}

func (c *compiled) evaluate(o *Override, now time.Time) Programme {
	p := c.at(o, now)
	for _, t := range c.boundaries(o, now) {
		q := c.at(o, t)
		if !q.same(p) {
			tt := t
			p.NextChange = &tt
			p.NextPlaylist = q.Playlist
			p.NextTrack = q.Track
			break
		}
	}
	return p
}

// at is what plays at t, without the next change.
func (c *compiled) at(o *Override, t time.Time) Programme {
	if o.Active(t) {
		return overrideProgramme(o)
	}
	local := t.In(c.loc)
	day := civil{local.Year(), local.Month(), local.Day()}
	best := -1
	for i, e := range c.exceptions {
		if e.covers(day) && (best < 0 || e.days < c.exceptions[best].days) {
			best = i
		}
	}
	if best >= 0 {
		e := c.exceptions[best]
		return Programme{Playlist: e.Playlist, Reason: ReasonException, Rule: e.label}
	}
	best = -1
	for i, r := range c.rules {
		if c.ruleActive(r, day, t) && (best < 0 || r.width < c.rules[best].width) {
			best = i
		}
	}
	if best >= 0 {
		r := c.rules[best]
		return Programme{Playlist: r.Playlist, Reason: ReasonRule, Rule: r.label}
	}
	return Programme{Playlist: c.def, Reason: ReasonDefault}
}

func (e exception) covers(d civil) bool {
	if !e.Yearly {
		return !d.before(e.from) && !e.to.before(d)
	}
	md, f, t := d.md(), e.from.md(), e.to.md()
	if f <= t {
		return f <= md && md <= t
	}
	return md >= f || md <= t // crosses new year
}

// ruleActive reports whether r's window that started on day or the day
// before (a span over midnight) contains t.
func (c *compiled) ruleActive(r rule, day civil, t time.Time) bool {
	for _, k := range []int{0, -1} {
		d := addDays(day, k)
		if !r.days[weekday(d)] {
			continue
		}
		start, end := c.window(r, d)
		if !t.Before(start) && t.Before(end) {
			return true
		}
	}
	return false
}

// window is the instants r's window on day d starts and ends.
func (c *compiled) window(r rule, d civil) (time.Time, time.Time) {
	return wallInstant(c.loc, d, r.from), wallInstant(c.loc, d, r.from+r.width)
}

// boundaries lists, in order, every instant after now at which what
// plays may change: rule edges over the next week and a day, local
// midnights (exceptions) over the horizon, the override's end.
func (c *compiled) boundaries(o *Override, now time.Time) []time.Time {
	local := now.In(c.loc)
	today := civil{local.Year(), local.Month(), local.Day()}
	var out []time.Time
	add := func(t time.Time) {
		if t.After(now) {
			out = append(out, t)
		}
	}
	if o.Active(now) && o.Until != nil {
		add(*o.Until)
	}
	for k := -1; k <= 8; k++ {
		d := addDays(today, k)
		for _, r := range c.rules {
			if r.days[weekday(d)] {
				s, e := c.window(r, d)
				add(s)
				add(e)
			}
		}
	}
	n := 0
	if len(c.exceptions) > 0 {
		n = horizonDays
	}
	for k := 1; k <= n; k++ {
		add(wallInstant(c.loc, addDays(today, k), 0))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

func addDays(d civil, k int) civil {
	t := time.Date(d.y, d.m, d.d+k, 12, 0, 0, 0, time.UTC)
	return civil{t.Year(), t.Month(), t.Day()}
}

func weekday(d civil) time.Weekday {
	return time.Date(d.y, d.m, d.d, 12, 0, 0, 0, time.UTC).Weekday()
}

// wallInstant is the instant the clocks of loc first show minutes after
// midnight of day d (minutes may pass 1440: the next day). A wall time
// the clocks skip (02:30 on a spring-forward day) is the instant they
// jump past it, so a rule starting then switches once, at the jump; a
// wall time they show twice (fall back) is its first showing, so the
// repeated hour is not a second window.
func wallInstant(loc *time.Location, d civil, minutes int) time.Time {
	naive := time.Date(d.y, d.m, d.d, 0, minutes, 0, 0, time.UTC)
	offAt := func(t time.Time) int { _, off := t.In(loc).Zone(); return off }
	before := offAt(naive.Add(-14 * time.Hour))
	after := offAt(naive.Add(14 * time.Hour))
	var found []time.Time
	for _, off := range []int{before, after} {
		t := naive.Add(-time.Duration(off) * time.Second)
		if offAt(t) == off {
			found = append(found, t)
		}
	}
	switch {
	case len(found) == 2 && found[1].Before(found[0]):
		return found[1]
	case len(found) > 0:
		return found[0]
	}
	// In the gap: reading the wall time with the offset before the jump
	// lands after it; the zone that starts there starts at the jump.
	start, _ := naive.Add(-time.Duration(before) * time.Second).In(loc).ZoneBounds()
	return start
}
