package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/internal/sysupdate"
	"github.com/mohproject/moh/player"
)

// updateCmd is `mohctl update`: a phased rollout of a system bundle.
type updateCmd struct {
	URL       string        `arg:"" placeholder:"BUNDLE-URL" help:"https URL the boxes download the RAUC bundle from."`
	SHA256    string        `name:"sha256" required:"" placeholder:"H" help:"The bundle's sha256 (hex); a box refuses any other content."`
	Wave      int           `default:"1" placeholder:"N" help:"Boxes updated at once; the next wave starts when this one is back healthy on the new version (default ${default})."`
	HaltAfter int           `name:"halt-after" default:"1" placeholder:"K" help:"Stop the rollout once K boxes failed or rolled back (default ${default}; 0: never stop)."`
	At        string        `default:"now" placeholder:"HH:MM" help:"When each box reboots into the new slot: now, or its local time HH:MM (a reboot silences the line for ~30 s)."`
	Wait      time.Duration `default:"20m" placeholder:"D" help:"How long a wave may take to come back healthy on the new version, reboot included (default ${default})."`
	Poll      time.Duration `default:"2s" hidden:"" help:"How often a box's status is read while waiting."`
	selection `embed:""`
}

// updateRow is one line of the rollout's table.
type updateRow struct {
	Device string `json:"device"`
	From   string `json:"from"`
	To     string `json:"to"`
	// Result is updated, rollback, failed or skipped (not tried: the
	// rollout halted).
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`
}

var hexSHA = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func (u *updateCmd) run(ctx context.Context, c *cli) (int, error) {
	if !strings.HasPrefix(u.URL, "https://") {
		return exitUsage, fmt.Errorf("%w: the bundle URL must be https://…", errUsage)
	}
	if !hexSHA.MatchString(u.SHA256) {
		return exitUsage, fmt.Errorf("%w: --sha256 must be 64 hex digits", errUsage)
	}
	if u.Wave < 1 || u.HaltAfter < 0 {
		return exitUsage, fmt.Errorf("%w: --wave must be at least 1 and --halt-after at least 0", errUsage)
	}
	if u.At != "now" {
		if _, err := time.Parse("15:04", u.At); err != nil || len(u.At) != 5 {
			return exitUsage, fmt.Errorf("%w: --at must be now or HH:MM, not %q", errUsage, u.At)
		}
	}
	if u.Poll <= 0 {
		u.Poll = 2 * time.Second
	}
	return withBoxes(ctx, c, u.selection, func(t transport, boxes []Box) (int, error) {
		rows := u.rollout(ctx, c, t, boxes)
		return u.print(c, rows), nil
	})
}

// rollout updates boxes wave by wave and stops starting waves once
// HaltAfter boxes failed or rolled back.
func (u *updateCmd) rollout(ctx context.Context, c *cli, t transport, boxes []Box) []updateRow {
	rows := make([]updateRow, len(boxes))
	bad := 0
	for start := 0; start < len(boxes); start += u.Wave {
		end := min(start+u.Wave, len(boxes))
		if u.HaltAfter > 0 && bad >= u.HaltAfter {
			for i := start; i < len(boxes); i++ {
				rows[i] = updateRow{Device: boxes[i].Name, Result: "skipped",
					Reason: fmt.Sprintf("rollout halted after %d failed or rolled back", bad)}
			}
			break
		}
		var wg sync.WaitGroup
		for i := start; i < end; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rows[i] = u.one(ctx, c, t, boxes[i])
			}()
		}
		wg.Wait()
		for i := start; i < end; i++ {
			if rows[i].Result != "updated" {
				bad++
			}
		}
	}
	return rows
}

// one updates one box: read its version, send the update, then wait for
// it to come back on the bundle's version with health ok or warning, or
// to report rollback or failed.
func (u *updateCmd) one(ctx context.Context, c *cli, t transport, b Box) updateRow {
	r := updateRow{Device: b.Name, Result: "failed"}
	sctx, cancel := context.WithTimeout(ctx, c.boxTimeout(10*time.Second))
	doc, err := boxStatus(sctx, t, b)
	cancel()
	if err != nil {
		r.Reason = "status: " + oneLine(describeNetErr(err).Error())
		return r
	}
	r.From = doc.Version
	// The box downloads and verifies before it answers.
	sctx, cancel = context.WithTimeout(ctx, c.boxTimeout(10*time.Minute))
	st, err := startUpdate(sctx, t, b, fleet.Command{Op: fleet.OpUpdate, URL: u.URL, SHA256: u.SHA256, Reboot: u.At})
	cancel()
	if err != nil {
		r.Reason = oneLine(describeNetErr(err).Error())
		return r
	}
	r.To = st.TargetVersion
	deadline := time.Now().Add(u.Wait)
	last := "no answer yet"
	for {
		wctx, cancel := context.WithTimeout(ctx, c.boxTimeout(10*time.Second))
		doc, err := boxStatus(wctx, t, b)
		cancel()
		if err != nil {
			last = "unreachable: " + oneLine(describeNetErr(err).Error()) // rebooting, most likely
		} else {
			var up *sysupdate.Status
			if doc.System != nil {
				up = doc.System.Update
			}
			h := doc.Health.State
			switch {
			case up != nil && up.Phase == sysupdate.PhaseRollback:
				r.Result, r.Reason = "rollback", up.Reason
				return r
			case up != nil && up.Phase == sysupdate.PhaseFailed:
				r.Reason = up.Reason
				return r
			case doc.Version == r.To && (h == player.HealthOK || h == player.HealthWarning) &&
				(up == nil || up.Phase == sysupdate.PhaseGood):
				// On trial the box may still roll back; "good" is its
				// own health-gated verdict (mark-good done).
				r.Result = "updated"
				return r
			}
			last = fmt.Sprintf("version %s, health %s", doc.Version, h)
			if up != nil {
				last += ", update " + string(up.Phase)
			}
		}
		if time.Now().After(deadline) {
			r.Reason = fmt.Sprintf("not back healthy on %s within %s (last: %s)", r.To, u.Wait, last)
			return r
		}
		select {
		case <-ctx.Done():
			r.Reason = "cancelled"
			return r
		case <-time.After(u.Poll):
		}
	}
}

// boxStatus reads a box's status document over either transport: its
// API, or its retained status on the broker.
func boxStatus(ctx context.Context, t transport, b Box) (status.Doc, error) {
	switch t := t.(type) {
	case *httpTransport:
		raw, err := t.api(b).status(ctx)
		if err != nil {
			return status.Doc{}, err
		}
		return status.Decode(raw)
	case *mqttTransport:
		// Asked live (the status command), not read from the retained
		// document: a rollout polls every box every few seconds, and a
		// retained read resubscribing that often has been seen to
		// return a stale last will of the connection before the reboot.
		raw, err := t.call(ctx, b, fleet.Command{Op: fleet.OpStatus})
		if err != nil {
			return status.Doc{}, err
		}
		return status.Decode(raw)
	}
	return status.Doc{}, errors.New("update: unknown transport")
}

// startUpdate sends the update: POST /api/v1/system/update with the URL,
// or the fleet's update command.
func startUpdate(ctx context.Context, t transport, b Box, cmd fleet.Command) (sysupdate.Status, error) {
	var st sysupdate.Status
	switch t := t.(type) {
	case *httpTransport:
		a := t.api(b)
		body := a.jsonBody(map[string]string{"url": cmd.URL, "sha256": cmd.SHA256, "reboot": cmd.Reboot})
		err := a.do(ctx, http.MethodPost, "/api/v1/system/update", body, "application/json", &st)
		return st, err
	case *mqttTransport:
		raw, err := t.call(ctx, b, cmd)
		if err != nil {
			return st, err
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			return st, fmt.Errorf("parse reply: %w", err)
		}
		return st, nil
	}
	return st, errors.New("update: unknown transport")
}

// print shows the table (or JSON) and returns the exit code: any box not
// updated fails the run.
func (u *updateCmd) print(c *cli, rows []updateRow) int {
	notOK := 0
	for _, r := range rows {
		if r.Result != "updated" {
			notOK++
		}
	}
	if c.output == "json" {
		writeJSON(c.stdout, rows)
	} else {
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tFROM\tTO\tRESULT\tREASON")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Device, dash(r.From), dash(r.To), r.Result, r.Reason)
		}
		tw.Flush()
	}
	if notOK > 0 {
		fmt.Fprintf(c.stderr, "mohctl: update: %d of %d boxes not updated\n", notOK, len(rows))
		return exitFailed
	}
	return exitOK
}
