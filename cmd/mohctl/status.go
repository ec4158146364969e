package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/player"
)

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (c *cli) status(ctx context.Context, t transport, boxes []Box) (int, error) {
	rows := t.statusAll(ctx, c, boxes)
	// Over MQTT too: a crashed box's last will can only say when its
	// connection began, and the last status read here may be later.
	c.rememberSeen(rows)
	failed, worst := 0, player.HealthOK
	for i, r := range rows {
		if !r.OK {
			failed++
			rows[i].Health = string(player.HealthCritical)
			if rows[i].HealthReason == "" {
				rows[i].HealthReason = "no answer: callers may hear silence"
			}
		}
		if h := player.HealthState(rows[i].Health); h.Code() > worst.Code() {
			worst = h
		}
	}
	if c.output == "json" {
		writeJSON(c.stdout, rows)
	} else {
		c.table(rows)
	}
	if failed > 0 {
		fmt.Fprintf(c.stderr, "mohctl: status: %d of %d boxes failed\n", failed, len(rows))
	}
	// The exit status is the fleet's health, as Nagios counts it: 0 all
	// ok, 1 any warning, 2 any critical or unreachable.
	return worst.Code(), nil
}

func (c *cli) table(rows []row) {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tHEALTH\tSTATE\tTRACK\tUPTIME\tREC/24H\tDISK\tVERSION\tLAST SEEN\tERROR")
	now := c.now()
	for _, r := range rows {
		state := r.State
		if !r.OK {
			state = "DOWN"
			if r.State != "" {
				state = r.State
			}
		}
		rec := "-"
		if r.Recoveries24h != nil {
			rec = fmt.Sprint(*r.Recoveries24h)
		}
		note := r.Error
		if r.Health != string(player.HealthOK) && r.HealthReason != "" && !strings.Contains(note, r.HealthReason) {
			note = strings.TrimPrefix(note+"; "+r.HealthReason, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Name, strings.ToUpper(dash(r.Health)), dash(state), dash(truncate(r.Track, 32)), dash(duration(r.UptimeS)), rec,
			dash(disk(r)), dash(r.Version), dash(ago(now, r.LastSeen)), truncate(note, 80))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	s = oneLine(s)
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func duration(s float64) string {
	if s <= 0 {
		return ""
	}
	d := time.Duration(s) * time.Second
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return d.String()
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	if d < 2*time.Second {
		return "now"
	}
	return duration(d.Seconds()) + " ago"
}

func disk(r row) string {
	var s string
	if r.DiskFree != nil {
		s = humanBytes(*r.DiskFree) + " free"
		if r.DiskTotal != nil && *r.DiskTotal > 0 {
			s = fmt.Sprintf("%s (%.0f%%)", s, 100*float64(*r.DiskFree)/float64(*r.DiskTotal))
		}
	}
	if r.DiskNote != "" {
		s = strings.TrimSpace(s + " !" + r.DiskNote)
	}
	return s
}

func humanBytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0fM", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%dK", b>>10)
}

// seenPath keeps when each box last answered, beside the inventory, so a
// box that is down shows how long it has been gone.
func (c *cli) seenPath() string { return c.inv.path + ".seen" }

func (c *cli) rememberSeen(rows []row) {
	seen := map[string]time.Time{}
	if raw, err := os.ReadFile(c.seenPath()); err == nil {
		json.Unmarshal(raw, &seen)
	}
	before := maps.Clone(seen)
	for i, r := range rows {
		if r.OK {
			seen[r.Name] = r.LastSeen.UTC().Truncate(time.Second)
		} else if t, ok := seen[r.Name]; ok && t.After(r.LastSeen) {
			rows[i].LastSeen = t
		}
	}
	if maps.Equal(before, seen) {
		return
	}
	b, _ := json.MarshalIndent(seen, "", "  ")
	if err := atomicfile.WriteFile(c.seenPath(), b, 0o600); err != nil {
		fmt.Fprintf(c.stderr, "mohctl: remember last seen: %v\n", err)
	}
}
