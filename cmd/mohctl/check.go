package main

import (
	"context"
	"fmt"
	"time"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/internal/check"
)

// checkCmd is `mohctl check`: a Nagios plugin for a box Nagios cannot
// reach. It reads the box's retained status document from the broker and
// judges it with the same evaluator, thresholds and perfdata as
// `mohd check` on the box (internal/check), so the two cannot drift.
// The document, not the exporter's metrics, is the source: it holds every
// fact the on-box check reads, and needs no exporter to be up.
type checkCmd struct {
	Device      string        `required:"" placeholder:"ID" help:"The box's device id (the name in its fleet certificate)."`
	DiskWarn    float64       `default:"15" placeholder:"PCT" help:"WARNING below this % of free disk (default ${default})."`
	DiskCrit    float64       `default:"5" placeholder:"PCT" help:"CRITICAL below this % of free disk (default ${default})."`
	RecentFault time.Duration `default:"15m" placeholder:"D" help:"A watchdog fault this recent is a WARNING (default ${default})."`
	MaxAge      time.Duration `default:"3m" placeholder:"D" help:"A status older than this is CRITICAL: the box or its link hung (default ${default}; boxes publish at least every 60 s)."`
}

// run prints one Nagios line and exits with its code; a plugin's own
// trouble (no --via, broker unreachable) is UNKNOWN, never mohctl's
// usual exit 1 or 2, which Nagios would read as WARNING or CRITICAL.
func (k *checkCmd) run(ctx context.Context, c *cli) (int, error) {
	return k.judge(ctx, c).Write(c.stdout), nil
}

func (k *checkCmd) judge(ctx context.Context, c *cli) check.Result {
	if c.via == "" {
		return check.Fail(check.Unknown, "check needs --via mqtts://broker:8883 and --ca, --cert and --key")
	}
	if k.MaxAge <= 0 || k.DiskWarn < 0 || k.DiskCrit < 0 || k.RecentFault < 0 {
		return check.Fail(check.Unknown, "--max-age must be positive; --disk-warn, --disk-crit and --recent-fault not negative")
	}
	// Nagios kills a plugin after its own timeout (often 10 s): answer
	// UNKNOWN before that rather than be killed without a word.
	ctx, cancel := context.WithTimeout(ctx, c.boxTimeout(8*time.Second))
	defer cancel()
	cl, err := fleet.Dial(ctx, fleet.ClientOptions{
		BrokerURL: c.via, CAFile: c.ca, CertFile: c.cert, KeyFile: c.key, Now: c.now,
	})
	if err != nil {
		return check.Fail(check.Unknown, fmt.Sprintf("cannot read the box's status: %v", err))
	}
	defer cl.Close()
	docs, err := cl.Statuses(ctx, []string{k.Device})
	if err != nil {
		return check.Fail(check.Unknown, fmt.Sprintf("cannot read the box's status: %v", err))
	}
	d, ok := docs[k.Device]
	now := c.now()
	switch {
	case !ok && ctx.Err() != nil:
		return check.Fail(check.Unknown, "cannot read the box's status: the broker sent nothing in time")
	case !ok:
		return check.Fail(check.Critical, fmt.Sprintf("no status on the broker for %s (never connected, not its device id, or this certificate may not read moh/+/status)", k.Device))
	case d.Presence != fleet.Online:
		// A last will carries the start of the connection it belongs
		// to, a clean shutdown the time it stopped: either way the last
		// moment the box is known to have been up.
		if d.Time.IsZero() {
			return check.Fail(check.Critical, "box offline")
		}
		return check.Fail(check.Critical, fmt.Sprintf("box offline, last known up %s (%s)", d.Time.UTC().Format(time.RFC3339), ago(now, d.Time)))
	case now.Sub(d.Time) > k.MaxAge:
		// The broker still says online, but the box stopped publishing:
		// a hung agent, or a link the broker has not yet noticed is dead.
		return check.Fail(check.Critical, fmt.Sprintf("status stale: last published %s (%s, over --max-age %s)", d.Time.UTC().Format(time.RFC3339), ago(now, d.Time), k.MaxAge))
	}
	doc, err := d.Doc()
	if err != nil {
		return check.Fail(check.Unknown, fmt.Sprintf("cannot read the box's status: %v", err))
	}
	return check.Evaluate(check.FromStatus(doc), check.Thresholds{
		DiskWarnPct: k.DiskWarn, DiskCritPct: k.DiskCrit, RecentFault: k.RecentFault,
	}, now)
}
