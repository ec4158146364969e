package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/player"
)

// transport reaches boxes either through their HTTP API or through the
// MQTT broker; every command is written once against it.
type transport interface {
	// statusAll fills one row per box, in order.
	statusAll(ctx context.Context, c *cli, boxes []Box) []row
	player(ctx context.Context, b Box, verb string) error
	volume(ctx context.Context, b Box, v int) error
	tracks(ctx context.Context, b Box) ([]track, error)
	push(ctx context.Context, b Box, p pushSpec) (track, error)
	remove(ctx context.Context, b Box, id string) error
	reorder(ctx context.Context, b Box, ids []string) error
	close()
}

// pushSpec is a track to add: a local file for HTTP, and for MQTT the URL
// the boxes download it from with its sha256.
type pushSpec struct {
	File   string
	URL    string
	SHA256 string
	Name   string
}

// row is one line of `mohctl status`.
type row struct {
	Name          string          `json:"name"`
	OK            bool            `json:"ok"`     // the box answered
	Health        string          `json:"health"` // ok, warning or critical; critical for a box that did not answer
	HealthReason  string          `json:"health_reason,omitempty"`
	State         string          `json:"state,omitempty"`
	Track         string          `json:"track,omitempty"`
	UptimeS       float64         `json:"uptime_s,omitempty"`
	Recoveries24h *int            `json:"recoveries_24h,omitempty"`
	DiskFree      *uint64         `json:"disk_free_bytes,omitempty"`
	DiskTotal     *uint64         `json:"disk_total_bytes,omitempty"`
	DiskNote      string          `json:"disk_note,omitempty"`
	Version       string          `json:"version,omitempty"`
	LastSeen      time.Time       `json:"last_seen,omitzero"`
	Error         string          `json:"error,omitempty"`
	Status        json.RawMessage `json:"status,omitempty"`
}

type httpTransport struct{ hc *http.Client }

func (h *httpTransport) api(b Box) *api { return newAPI(h.hc, b) }
func (h *httpTransport) close()         {}

func (h *httpTransport) player(ctx context.Context, b Box, verb string) error {
	return h.api(b).player(ctx, verb)
}

func (h *httpTransport) volume(ctx context.Context, b Box, v int) error {
	return h.api(b).volume(ctx, v)
}

func (h *httpTransport) tracks(ctx context.Context, b Box) ([]track, error) {
	return h.api(b).tracks(ctx)
}

func (h *httpTransport) push(ctx context.Context, b Box, p pushSpec) (track, error) {
	return h.api(b).upload(ctx, p.File)
}

func (h *httpTransport) remove(ctx context.Context, b Box, id string) error {
	return h.api(b).remove(ctx, id)
}

func (h *httpTransport) reorder(ctx context.Context, b Box, ids []string) error {
	return h.api(b).reorder(ctx, ids)
}

// statusAll polls every box concurrently: status, then its events for
// the recoveries of the last 24 h.
func (h *httpTransport) statusAll(ctx context.Context, c *cli, boxes []Box) []row {
	rows := make([]row, len(boxes))
	now := c.now()
	index := make(map[string]int, len(boxes))
	for i, b := range boxes {
		index[b.Name] = i
	}
	res := c.each(ctx, boxes, c.boxTimeout(10*time.Second), func(ctx context.Context, b Box) (string, error) {
		i := index[b.Name]
		a := h.api(b)
		raw, err := a.status(ctx)
		if err != nil {
			return "", err
		}
		r, err := statusRow(b.Name, raw)
		if err != nil {
			return "", err
		}
		r.LastSeen = now
		if ev, err := a.events(ctx); err == nil {
			n := 0
			for _, e := range ev {
				if e.Kind == "recovered" && now.Sub(e.Time.Time) <= 24*time.Hour {
					n++
				}
			}
			r.Recoveries24h = &n
		} else {
			r.Error = "events: " + describeNetErr(err).Error()
		}
		rows[i] = r
		return "", nil
	})
	for i, o := range res {
		if !o.OK {
			rows[i] = row{Name: o.Box, Error: o.Err}
		}
	}
	return rows
}

// statusRow turns a box's status document, as either transport carried
// it, into its row. A document that is not JSON fails the box; one with a
// field of an unexpected type still shows what did decode, with a note.
func statusRow(name string, raw json.RawMessage) (row, error) {
	s, err := status.Decode(raw)
	var typeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typeErr) {
		return row{}, err
	}
	r := rowFromStatus(name, s, raw)
	if err != nil {
		r.Error = strings.TrimPrefix(r.Error+"; "+err.Error(), "; ")
	}
	return r, nil
}

func rowFromStatus(name string, s status.Doc, raw json.RawMessage) row {
	r := row{Name: name, OK: true, State: string(s.State), UptimeS: s.Uptime.Seconds(), Version: s.Version, Status: raw}
	if s.HasHealth() {
		r.Health, r.HealthReason = string(s.Health.State), s.Health.Reason
	} else {
		// A box from before the health model: judge by what it plays.
		switch s.State {
		case player.StatePlaying:
			r.Health = string(player.HealthOK)
		case player.StateStopped:
			r.Health, r.HealthReason = string(player.HealthWarning), "stopped"
		default:
			r.Health, r.HealthReason = string(player.HealthCritical), "not playing ("+string(s.State)+")"
		}
	}
	if s.Track != nil {
		r.Track = s.Track.Name
	}
	if !s.Fault.IsZero() {
		r.Error = "fault: " + s.Fault.String()
	}
	if d := s.Disk; d != nil {
		if d.TotalBytes > 0 || d.FreeBytes > 0 {
			free, total := d.FreeBytes, d.TotalBytes
			r.DiskFree, r.DiskTotal = &free, &total
		}
		if d.Warning {
			r.DiskNote = d.Message
			if r.DiskNote == "" {
				r.DiskNote = "low"
			}
		}
	}
	return r
}
