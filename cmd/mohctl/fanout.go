package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// outcome is what happened on one box.
type outcome struct {
	Box string `json:"box"`
	OK  bool   `json:"ok"`
	Msg string `json:"message,omitempty"`
	Err string `json:"error,omitempty"`
}

// each runs fn on every box, at most c.parallel at once, each under its
// own timeout, and returns the outcomes in inventory order.
func (c *cli) each(ctx context.Context, boxes []Box, timeout time.Duration, fn func(ctx context.Context, b Box) (string, error)) []outcome {
	out := make([]outcome, len(boxes))
	sem := make(chan struct{}, max(c.parallel, 1))
	var wg sync.WaitGroup
	for i, b := range boxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out[i] = outcome{Box: b.Name, Err: "cancelled"}
				return
			}
			defer func() { <-sem }()
			bctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			msg, err := fn(bctx, b)
			if err != nil {
				out[i] = outcome{Box: b.Name, Err: oneLine(describeNetErr(err).Error())}
				return
			}
			out[i] = outcome{Box: b.Name, OK: true, Msg: msg}
		}()
	}
	wg.Wait()
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
