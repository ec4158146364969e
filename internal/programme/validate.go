package programme

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// dayIndex maps "mon" or "monday" (any case) to its time.Weekday.
func dayIndex(s string) (time.Weekday, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, d := range dayNames {
		if s == d || s == strings.ToLower(time.Weekday(i).String()) {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// parseClock reads "HH:MM" (00:00..24:00) as minutes after midnight.
func parseClock(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, false
	}
	return hh*60 + mm, true
}

// civil is a local calendar date.
type civil struct {
	y int
	m time.Month
	d int
}

func parseDate(s string) (civil, bool) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return civil{}, false
	}
	return civil{t.Year(), t.Month(), t.Day()}, true
}

func (c civil) before(o civil) bool {
	if c.y != o.y {
		return c.y < o.y
	}
	if c.m != o.m {
		return c.m < o.m
	}
	return c.d < o.d
}

func (c civil) md() int { return int(c.m)*100 + c.d }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidName reports whether a playlist name is acceptable: it appears in
// URLs and file contents, so it is kept to a safe alphabet.
func ValidName(s string) bool { return nameRE.MatchString(s) }

var (
	locMu    sync.Mutex
	locCache = map[string]*time.Location{}
)

// location loads an IANA zone once; the binary embeds tzdata (mohd
// imports time/tzdata) so a minimal image has every zone.
func location(name string) (*time.Location, error) {
	locMu.Lock()
	defer locMu.Unlock()
	if l, ok := locCache[name]; ok {
		return l, nil
	}
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("no time zone")
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locCache[name] = l
	return l, nil
}

// rule is a Rule parsed: the week days it starts on, its start and its
// length in wall-clock minutes.
type rule struct {
	Rule
	days  [7]bool
	from  int // minutes after local midnight
	width int // minutes, 1..1440
	label string
}

type exception struct {
	Exception
	from, to civil
	days     int // length in days, for "narrower wins"
	label    string
}

// compiled is a validated schedule ready to evaluate.
type compiled struct {
	loc        *time.Location
	def        string
	rules      []rule
	exceptions []exception
}

// compile validates a schedule's own consistency (playlist names are
// checked against the store by the caller).
func compile(s Schedule) (*compiled, error) {
	loc, err := location(s.Timezone)
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Code: "unknown_timezone", Message: fmt.Sprintf("timezone %q is not an IANA time zone (e.g. Europe/Paris)", s.Timezone)}
	}
	if s.Default == "" {
		return nil, invalid("the schedule needs a default playlist")
	}
	c := &compiled{loc: loc, def: s.Default}
	for i, r := range s.Rules {
		cr := rule{Rule: r}
		if len(r.Days) == 0 {
			return nil, invalid("rule %d: days is empty", i+1)
		}
		for _, d := range r.Days {
			wd, ok := dayIndex(d)
			if !ok {
				return nil, invalid("rule %d: %q is not a day (mon, tue, wed, thu, fri, sat, sun)", i+1, d)
			}
			cr.days[wd] = true
		}
		from, ok1 := parseClock(r.From)
		to, ok2 := parseClock(r.To)
		if !ok1 || !ok2 || from == 1440 {
			return nil, invalid("rule %d: from and to must be local times HH:MM (00:00 to 24:00), got %q–%q", i+1, r.From, r.To)
		}
		cr.from = from
		cr.width = to - from
		if cr.width <= 0 {
			cr.width += 1440 // spans midnight
		}
		if r.Playlist == "" {
			return nil, invalid("rule %d: playlist is empty", i+1)
		}
		cr.label = ruleLabel(cr)
		c.rules = append(c.rules, cr)
	}
	for i, a := range c.rules {
		for j := i + 1; j < len(c.rules); j++ {
			if b := c.rules[j]; a.width == b.width && weeklyOverlap(a, b) {
				return nil, invalid("rules %d and %d are equally narrow and overlap, so neither would be more specific; make one narrower or move it", i+1, j+1)
			}
		}
	}
	for i, e := range s.Exceptions {
		ce := exception{Exception: e}
		from, ok := parseDate(e.From)
		if !ok {
			return nil, invalid("exception %d: from must be a date YYYY-MM-DD, got %q", i+1, e.From)
		}
		to := from
		if e.To != "" {
			if to, ok = parseDate(e.To); !ok {
				return nil, invalid("exception %d: to must be a date YYYY-MM-DD, got %q", i+1, e.To)
			}
		}
		if e.Playlist == "" {
			return nil, invalid("exception %d: playlist is empty", i+1)
		}
		span := int(time.Date(to.y, to.m, to.d, 12, 0, 0, 0, time.UTC).Sub(time.Date(from.y, from.m, from.d, 12, 0, 0, 0, time.UTC)).Hours()/24) + 1
		if e.Yearly {
			// A yearly range may cross new year (12-30 to 01-02); its
			// length is taken over the month-days.
			if to.md() < from.md() {
				to.y = from.y + 1
			} else {
				to.y = from.y
			}
			span = int(time.Date(to.y, to.m, to.d, 12, 0, 0, 0, time.UTC).Sub(time.Date(from.y, from.m, from.d, 12, 0, 0, 0, time.UTC)).Hours()/24) + 1
		}
		if span < 1 || span > 366 {
			return nil, invalid("exception %d: to (%s) must not be before from (%s), and a range is at most a year", i+1, e.To, e.From)
		}
		ce.from, ce.to, ce.days = from, to, span
		ce.label = exceptionLabel(ce)
		c.exceptions = append(c.exceptions, ce)
	}
	return c, nil
}

// weeklyOverlap reports whether two rules' windows share a minute of the
// week.
func weeklyOverlap(a, b rule) bool {
	const week = 7 * 1440
	for da := range 7 {
		if !a.days[da] {
			continue
		}
		for db := range 7 {
			if !b.days[db] {
				continue
			}
			as, bs := da*1440+a.from, db*1440+b.from
			// Compare on a circle: shift b by a week either way.
			for _, off := range []int{-week, 0, week} {
				s := bs + off
				if as < s+b.width && s < as+a.width {
					return true
				}
			}
		}
	}
	return false
}

var shortDay = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// ruleLabel is the rule as the page and status say it:
// "business-hours (Mon–Fri 08:00–18:00)".
func ruleLabel(r rule) string {
	var parts []string
	for start := 1; start < 8; {
		d := start % 7
		if !r.days[d] {
			start++
			continue
		}
		end := start
		for end+1 < 8 && r.days[(end+1)%7] {
			end++
		}
		if end == start {
			parts = append(parts, shortDay[d])
		} else {
			parts = append(parts, shortDay[d]+"–"+shortDay[end%7])
		}
		start = end + 1
	}
	desc := strings.Join(parts, ",") + " " + r.From + "–" + r.To
	if r.Name != "" {
		return r.Name + " (" + desc + ")"
	}
	return r.Playlist + " (" + desc + ")"
}

func exceptionLabel(e exception) string {
	desc := e.From
	if e.To != "" && e.To != e.From {
		desc += "–" + e.To
	}
	if e.Yearly {
		desc += ", yearly"
	}
	if e.Name != "" {
		return e.Name + " (" + desc + ")"
	}
	return e.Playlist + " (" + desc + ")"
}

// playlistsUsed lists every playlist a schedule names.
func (s Schedule) playlistsUsed() []string {
	out := []string{s.Default}
	for _, r := range s.Rules {
		out = append(out, r.Playlist)
	}
	for _, e := range s.Exceptions {
		out = append(out, e.Playlist)
	}
	return out
}
