package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mohproject/moh/fleet"
)

// viaGroup sends a simple command once to the group topic when going
// through the broker with --group naming a real group (not a box name).
func (c *cli) viaGroup(ctx context.Context, t transport, boxes []Box, cmd fleet.Command, msg string) ([]outcome, bool) {
	m, ok := t.(*mqttTransport)
	if !ok || c.group == "" {
		return nil, false
	}
	for _, b := range c.inv.Boxes {
		if b.Name == c.group {
			return nil, false
		}
	}
	gctx, cancel := context.WithTimeout(ctx, c.boxTimeout(10*time.Second))
	defer cancel()
	errs := m.groupCall(gctx, c.group, boxes, cmd)
	out := make([]outcome, len(boxes))
	for i, b := range boxes {
		if err := errs[b.Name]; err != nil {
			out[i] = outcome{Box: b.Name, Err: oneLine(err.Error())}
		} else {
			out[i] = outcome{Box: b.Name, OK: true, Msg: msg}
		}
	}
	return out, true
}

func (c *cli) player(ctx context.Context, t transport, boxes []Box, verb string) (int, error) {
	if res, ok := c.viaGroup(ctx, t, boxes, fleet.Command{Op: verb}, verb); ok {
		return c.report(verb, res), nil
	}
	res := c.each(ctx, boxes, c.boxTimeout(10*time.Second), func(ctx context.Context, b Box) (string, error) {
		return verb, t.player(ctx, b, verb)
	})
	return c.report(verb, res), nil
}

func (c *cli) volume(ctx context.Context, t transport, boxes []Box, v int) (int, error) {
	if res, ok := c.viaGroup(ctx, t, boxes, fleet.Command{Op: fleet.OpVolume, Volume: &v}, fmt.Sprintf("volume %d", v)); ok {
		return c.report("volume", res), nil
	}
	res := c.each(ctx, boxes, c.boxTimeout(10*time.Second), func(ctx context.Context, b Box) (string, error) {
		return fmt.Sprintf("volume %d", v), t.volume(ctx, b, v)
	})
	return c.report("volume", res), nil
}

func (c *cli) push(ctx context.Context, t transport, boxes []Box, file string) (int, error) {
	p := pushSpec{File: file, Name: filepath.Base(file), URL: c.pushURL}
	f, err := os.Open(file)
	if err != nil {
		return exitFailed, fmt.Errorf("push: %w", err)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return exitFailed, fmt.Errorf("push: read %s: %w", file, err)
	}
	p.SHA256 = hex.EncodeToString(h.Sum(nil))
	res := c.each(ctx, boxes, c.boxTimeout(5*time.Minute), func(ctx context.Context, b Box) (string, error) {
		tr, err := t.push(ctx, b, p)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("added %s as %s", p.Name, tr.ID), nil
	})
	return c.report("push", res), nil
}

// resolve finds the track an operator named on one box: by id, or by
// display name if exactly one track has it. Ids can differ between boxes;
// names are what the operator knows.
func resolve(list []track, ref string) (track, error) {
	for _, tr := range list {
		if tr.ID == ref {
			return tr, nil
		}
	}
	var hits []track
	for _, tr := range list {
		if tr.Name == ref || strings.TrimSuffix(tr.Name, filepath.Ext(tr.Name)) == ref {
			hits = append(hits, tr)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return track{}, fmt.Errorf("no track %q on this box", ref)
	}
	return track{}, fmt.Errorf("%d tracks are named %q; use the id", len(hits), ref)
}

func (c *cli) remove(ctx context.Context, t transport, boxes []Box, ref string) (int, error) {
	res := c.each(ctx, boxes, c.boxTimeout(30*time.Second), func(ctx context.Context, b Box) (string, error) {
		list, err := t.tracks(ctx, b)
		if err != nil {
			return "", fmt.Errorf("list tracks: %w", err)
		}
		tr, err := resolve(list, ref)
		if err != nil {
			return "", err
		}
		if err := t.remove(ctx, b, tr.ID); err != nil {
			return "", err
		}
		return fmt.Sprintf("removed %s (%s)", tr.Name, tr.ID), nil
	})
	return c.report("remove", res), nil
}

func (c *cli) showPlaylist(ctx context.Context, t transport, boxes []Box) (int, error) {
	res := c.each(ctx, boxes, c.boxTimeout(10*time.Second), func(ctx context.Context, b Box) (string, error) {
		list, err := t.tracks(ctx, b)
		if err != nil {
			return "", err
		}
		if len(list) == 0 {
			return "(empty: the built-in track plays)", nil
		}
		parts := make([]string, len(list))
		for i, tr := range list {
			parts[i] = fmt.Sprintf("%d. %s [%s]", i+1, tr.Name, tr.ID)
		}
		return strings.Join(parts, "  "), nil
	})
	return c.report("playlist", res), nil
}

// setPlaylist puts the named tracks first, in the given order; tracks not
// named keep their relative order after them, so nothing is dropped by a
// partial list.
func (c *cli) setPlaylist(ctx context.Context, t transport, boxes []Box, refs []string) (int, error) {
	res := c.each(ctx, boxes, c.boxTimeout(30*time.Second), func(ctx context.Context, b Box) (string, error) {
		list, err := t.tracks(ctx, b)
		if err != nil {
			return "", fmt.Errorf("list tracks: %w", err)
		}
		var order []string
		named := map[string]bool{}
		for _, ref := range refs {
			tr, err := resolve(list, ref)
			if err != nil {
				return "", err
			}
			if named[tr.ID] {
				return "", fmt.Errorf("track %q named twice", ref)
			}
			named[tr.ID] = true
			order = append(order, tr.ID)
		}
		for _, tr := range list {
			if !named[tr.ID] {
				order = append(order, tr.ID)
			}
		}
		if err := t.reorder(ctx, b, order); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d tracks ordered", len(order)), nil
	})
	return c.report("playlist", res), nil
}
