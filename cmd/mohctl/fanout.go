package main

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// outcome is what happened on one box.
type outcome struct {
	Box string `json:"box"`
	OK  bool   `json:"ok"`
	Msg string `json:"message,omitempty"`
	Err string `json:"error,omitempty"`
}

// each runs fn on every box, at most c.parallel at once, each under its
// own timeout, and returns the outcomes in inventory order. fn's error is
// that box's outcome, never the whole run's: one box failing must not
// cancel the others.
func (c *cli) each(ctx context.Context, boxes []Box, timeout time.Duration, fn func(ctx context.Context, b Box) (string, error)) []outcome {
	out := make([]outcome, len(boxes))
	var g errgroup.Group
	g.SetLimit(max(c.parallel, 1))
	for i, b := range boxes {
		if ctx.Err() != nil {
			out[i] = outcome{Box: b.Name, Err: "cancelled"}
			continue
		}
		g.Go(func() error {
			bctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			msg, err := fn(bctx, b)
			if err != nil {
				out[i] = outcome{Box: b.Name, Err: oneLine(describeNetErr(err).Error())}
			} else {
				out[i] = outcome{Box: b.Name, OK: true, Msg: msg}
			}
			return nil
		})
	}
	g.Wait()
	return out
}

// report prints one line per box (or JSON) and a summary, and returns
// the exit code: any failed box fails the run, so a partial success is
// never silent.
func (c *cli) report(what string, res []outcome) int {
	failed := 0
	for _, r := range res {
		if !r.OK {
			failed++
		}
	}
	if c.output == "json" {
		writeJSON(c.stdout, res)
	} else {
		w := 4
		for _, r := range res {
			w = max(w, len(r.Box))
		}
		for _, r := range res {
			if r.OK {
				fmt.Fprintf(c.stdout, "%-*s  ok      %s\n", w, r.Box, r.Msg)
			} else {
				fmt.Fprintf(c.stdout, "%-*s  FAILED  %s\n", w, r.Box, r.Err)
			}
		}
	}
	if failed > 0 {
		fmt.Fprintf(c.stderr, "mohctl: %s: %d of %d boxes failed\n", what, failed, len(res))
		return exitFailed
	}
	return exitOK
}
