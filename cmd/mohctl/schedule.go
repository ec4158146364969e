package main

// mohctl schedule set and mohctl override: the programme of many boxes at
// once, over their HTTP API or the broker, with the moment each box made
// an override audible.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/internal/programme"
	"github.com/mohproject/moh/internal/status"
)

type scheduleCmd struct {
	Set scheduleSetCmd `cmd:"" help:"Replace each box's schedule with FILE (JSON or YAML, the shape of PUT /api/v1/schedule)."`
}

type scheduleSetCmd struct {
	File      string `arg:"" placeholder:"FILE" help:"The schedule: .json, or YAML (.yaml, .yml)."`
	selection `embed:""`
}

type overrideCmd struct {
	Track     string        `arg:"" optional:"" placeholder:"TRACK|clear" help:"The track (id or name) to play now on every box, or 'clear' to end the override."`
	Playlist  string        `placeholder:"P" help:"Play this playlist instead of one track."`
	Until     string        `placeholder:"T" help:"When the override ends by itself: an RFC 3339 time, or a duration from now (30m, 2h). Default: until cleared."`
	Wait      time.Duration `default:"10s" placeholder:"D" help:"How long to wait for each box to make it audible (0: do not wait)."`
	selection `embed:""`
}

// readSchedule reads a schedule file, refusing unknown keys so a typo
// is not a silently ignored rule.
func readSchedule(file string) (programme.Schedule, error) {
	var s programme.Schedule
	b, err := os.ReadFile(file)
	if err != nil {
		return s, err
	}
	switch ext := strings.ToLower(filepath.Ext(file)); {
	case ext == ".yaml" || ext == ".yml":
		if err := yaml.UnmarshalStrict(b, &s); err != nil {
			return s, fmt.Errorf("%s: %w", file, err)
		}
	default:
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return s, fmt.Errorf("%s: %w", file, err)
		}
	}
	return s, nil
}

func (s *scheduleSetCmd) run(ctx context.Context, c *cli) (int, error) {
	sched, err := readSchedule(s.File)
	if err != nil {
		return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
	}
	return withBoxes(ctx, c, s.selection, func(t transport, boxes []Box) (int, error) {
		res := c.each(ctx, boxes, c.boxTimeout(30*time.Second), func(ctx context.Context, b Box) (string, error) {
			err := progCall(ctx, t, b, http.MethodPut, "/api/v1/schedule", sched, fleet.Command{Op: fleet.OpSchedule, Schedule: &sched})
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("schedule set (%s, %d rules, %d exceptions)", sched.Timezone, len(sched.Rules), len(sched.Exceptions)), nil
		})
		return c.report("schedule", res), nil
	})
}

// parseUntil reads --until: an RFC 3339 instant or a duration from now.
func parseUntil(s string, now time.Time) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return &t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return nil, fmt.Errorf("--until %q: want an RFC 3339 time (2026-12-24T18:00:00+01:00) or a duration from now (30m)", s)
	}
	t := now.Add(d).Truncate(time.Second)
	return &t, nil
}

func (o *overrideCmd) run(ctx context.Context, c *cli) (int, error) {
	clearing := o.Track == "clear"
	switch {
	case clearing && (o.Playlist != "" || o.Until != ""):
		return exitUsage, fmt.Errorf("%w: override clear takes no --playlist or --until", errUsage)
	case !clearing && (o.Track == "") == (o.Playlist == ""):
		return exitUsage, fmt.Errorf("%w: name a TRACK or --playlist P (or 'clear')", errUsage)
	}
	until, err := parseUntil(o.Until, time.Now())
	if err != nil {
		return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
	}
	return withBoxes(ctx, c, o.selection, func(t transport, boxes []Box) (int, error) {
		timeout := c.boxTimeout(30*time.Second) + o.Wait
		res := c.each(ctx, boxes, timeout, func(ctx context.Context, b Box) (string, error) {
			if clearing {
				if err := progCall(ctx, t, b, http.MethodDelete, "/api/v1/override", nil, fleet.Command{Op: fleet.OpOverrideClear}); err != nil {
					return "", err
				}
				return "override cleared", nil
			}
			ov := programme.Override{Playlist: o.Playlist, Until: until}
			what := "playlist " + o.Playlist
			if o.Track != "" {
				list, err := t.tracks(ctx, b)
				if err != nil {
					return "", fmt.Errorf("list tracks: %w", err)
				}
				tr, err := resolve(list, o.Track)
				if err != nil {
					return "", err
				}
				ov.Track, what = tr.ID, tr.Name
			}
			sent := time.Now()
			if err := progCall(ctx, t, b, http.MethodPut, "/api/v1/override", ov, fleet.Command{Op: fleet.OpOverride, Override: &ov}); err != nil {
				return "", err
			}
			if o.Wait <= 0 {
				return "override set: " + what, nil
			}
			after, err := waitAudible(ctx, t, b, ov, sent, o.Wait)
			if err != nil {
				return "", fmt.Errorf("override set: %s, but %w", what, err)
			}
			return fmt.Sprintf("override audible after %.2f s: %s", after.Seconds(), what), nil
		})
		return c.report("override", res), nil
	})
}

// progCall sends one programme change over whichever transport: the
// HTTP request, or the fleet command.
func progCall(ctx context.Context, t transport, b Box, method, path string, body any, cmd fleet.Command) error {
	switch tt := t.(type) {
	case *httpTransport:
		a := tt.api(b)
		if body == nil {
			return a.do(ctx, method, path, nil, "", nil)
		}
		return a.do(ctx, method, path, a.jsonBody(body), "application/json", nil)
	case *mqttTransport:
		_, err := tt.call(ctx, b, cmd)
		return err
	}
	return errors.New("unknown transport")
}

// progBoxStatus reads one box's status document over either transport.
func progBoxStatus(ctx context.Context, t transport, b Box) (status.Doc, error) {
	var raw json.RawMessage
	var err error
	switch tt := t.(type) {
	case *httpTransport:
		raw, err = tt.api(b).status(ctx)
	case *mqttTransport:
		raw, err = tt.call(ctx, b, fleet.Command{Op: fleet.OpStatus})
	default:
		err = errors.New("unknown transport")
	}
	if err != nil {
		return status.Doc{}, err
	}
	return status.Decode(raw)
}

// audible reports whether a box's status shows the override on air: the
// programme says so and, for a track, that track plays.
func audible(d status.Doc, ov programme.Override) bool {
	p := d.Programme
	if p == nil || p.Reason != programme.ReasonOverride || d.State != "playing" {
		return false
	}
	if ov.Track != "" {
		return p.Track == ov.Track && d.Track != nil && d.Track.ID == ov.Track
	}
	return p.Playlist == ov.Playlist && d.Track != nil
}

// waitAudible polls a box's status until the override is on air and
// returns how long after sent it was seen.
func waitAudible(ctx context.Context, t transport, b Box, ov programme.Override, sent time.Time, wait time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(wait)
	for {
		d, err := progBoxStatus(ctx, t, b)
		if err == nil && audible(d, ov) {
			return time.Since(sent), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return 0, fmt.Errorf("not seen audible within %s: %v", wait, err)
			}
			return 0, fmt.Errorf("not seen audible within %s", wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
