package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mohproject/moh/fleet"
)

// mqttTransport sends the same operations through the broker, for boxes
// with no reachable port. Each command carries an expiry equal to the
// per-box deadline, so a box that comes back later refuses it.
type mqttTransport struct {
	cl *fleet.Client
}

func dialMQTT(ctx context.Context, c *cli) (transport, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cl, err := fleet.Dial(dctx, fleet.ClientOptions{
		BrokerURL: c.via, CAFile: c.ca, CertFile: c.cert, KeyFile: c.key, Now: c.now,
	})
	if err != nil {
		return nil, err
	}
	return &mqttTransport{cl: cl}, nil
}

func (m *mqttTransport) close() { m.cl.Close() }

// call sends cmd to one box and waits for its reply.
func (m *mqttTransport) call(ctx context.Context, b Box, cmd fleet.Command) (json.RawMessage, error) {
	dev := b.DeviceID()
	replies, err := m.cl.Send(ctx, fleet.Target{Device: dev}, cmd, []string{dev})
	if err != nil {
		return nil, err
	}
	r, ok := replies[dev]
	if !ok {
		return nil, errors.New("no reply through the broker (box offline or not subscribed)")
	}
	if !r.OK {
		if r.Error != nil {
			return nil, r.Error
		}
		return nil, errors.New("box answered with an error")
	}
	return r.Result, nil
}

func (m *mqttTransport) player(ctx context.Context, b Box, verb string) error {
	_, err := m.call(ctx, b, fleet.Command{Op: verb})
	return err
}

func (m *mqttTransport) volume(ctx context.Context, b Box, v int) error {
	_, err := m.call(ctx, b, fleet.Command{Op: fleet.OpVolume, Volume: &v})
	return err
}

func (m *mqttTransport) tracks(ctx context.Context, b Box) ([]track, error) {
	raw, err := m.call(ctx, b, fleet.Command{Op: fleet.OpTracks})
	if err != nil {
		return nil, err
	}
	return decodeList[track](raw, "tracks")
}

func (m *mqttTransport) push(ctx context.Context, b Box, p pushSpec) (track, error) {
	raw, err := m.call(ctx, b, fleet.Command{Op: fleet.OpAddTrack, URL: p.URL, SHA256: p.SHA256, Name: p.Name})
	if err != nil {
		return track{}, err
	}
	var t track
	if err := json.Unmarshal(raw, &t); err != nil {
		return track{}, fmt.Errorf("parse reply: %w", err)
	}
	return t, nil
}

func (m *mqttTransport) remove(ctx context.Context, b Box, id string) error {
	_, err := m.call(ctx, b, fleet.Command{Op: fleet.OpRemoveTrack, TrackID: id})
	return err
}

func (m *mqttTransport) reorder(ctx context.Context, b Box, ids []string) error {
	_, err := m.call(ctx, b, fleet.Command{Op: fleet.OpReorder, Order: ids})
	return err
}

// statusAll reads the boxes' retained status documents: instant, and it
// shows boxes that are offline (their last will) without waiting for
// them to time out.
func (m *mqttTransport) statusAll(ctx context.Context, c *cli, boxes []Box) []row {
	devs := make([]string, len(boxes))
	for i, b := range boxes {
		devs[i] = b.DeviceID()
	}
	sctx, cancel := context.WithTimeout(ctx, c.boxTimeout(5*time.Second))
	defer cancel()
	docs, err := m.cl.Statuses(sctx, devs)
	rows := make([]row, len(boxes))
	for i, b := range boxes {
		d, ok := docs[b.DeviceID()]
		switch {
		case err != nil:
			rows[i] = row{Name: b.Name, Error: err.Error()}
		case !ok:
			rows[i] = row{Name: b.Name, Error: "no status on the broker (never connected?)"}
		case d.Presence != fleet.Online:
			rows[i] = row{Name: b.Name, State: "offline", LastSeen: d.Time, Error: "offline"}
		default:
			r, err := statusRow(b.Name, d.Status)
			if err != nil {
				r = row{Name: b.Name, Error: err.Error()}
			}
			r.LastSeen = d.Time
			rows[i] = r
		}
	}
	return rows
}

// groupCall publishes cmd once on the group's topic and collects one
// reply per box, instead of one publish per box; silent boxes get the
// same request again on their own topic (see fleet.ClientOptions.Resend).
func (m *mqttTransport) groupCall(ctx context.Context, group string, boxes []Box, cmd fleet.Command) map[string]error {
	devs := make([]string, len(boxes))
	for i, b := range boxes {
		devs[i] = b.DeviceID()
	}
	out := make(map[string]error, len(boxes))
	replies, err := m.cl.Send(ctx, fleet.Target{Group: group}, cmd, devs)
	for _, b := range boxes {
		r, ok := replies[b.DeviceID()]
		switch {
		case err != nil:
			out[b.Name] = err
		case !ok:
			out[b.Name] = errors.New("no reply through the broker (box offline or not subscribed)")
		case !r.OK && r.Error != nil:
			out[b.Name] = r.Error
		case !r.OK:
			out[b.Name] = errors.New("box answered with an error")
		default:
			out[b.Name] = nil
		}
	}
	return out
}
