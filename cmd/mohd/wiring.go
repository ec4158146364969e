package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/mohproject/moh/internal/metrics"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/uploads"
)

// libraryOptions turns mohd's settings into the library's.
func libraryOptions(c *config, log *slog.Logger, onEvent func(kind, msg string)) (uploads.Options, error) {
	o := uploads.Options{
		DataDir:      c.Data,
		MusicDir:     c.Music,
		MaxBytes:     c.MaxUploadMB << 20,
		MinFreeBytes: c.MinFreeMB << 20,
		Logger:       log,
		OnEvent:      onEvent,
	}
	o.MaxDuration = time.Duration(c.MaxMinutes) * time.Minute
	if strings.EqualFold(c.TargetLUFS, "off") {
		o.NormaliseOff = true
	} else {
		v, err := strconv.ParseFloat(c.TargetLUFS, 64)
		if err != nil || v > 0 || v < -70 {
			return o, fmt.Errorf("--target-lufs %q: want a loudness between -70 and 0 LUFS, or off", c.TargetLUFS)
		}
		o.TargetLUFS = &v
	}
	return o, nil
}

// playlistFrom maps the library's order onto the player's tracks.
func playlistFrom(tracks []uploads.Track) []player.Track {
	out := make([]player.Track, 0, len(tracks))
	for _, t := range tracks {
		out = append(out, player.Track{ID: t.ID, Name: t.Name, Path: t.Path})
	}
	return out
}

// syncPlaylist hands every library change to the player; the library
// signals within its scan interval, the player applies it without a gap.
func syncPlaylist(ctx context.Context, lib *uploads.Library, p *player.Player) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lib.Changes():
			p.SetPlaylist(playlistFrom(lib.Tracks()))
		}
	}
}

// metricsOptions feeds Prometheus from the player and the library.
func metricsOptions(p *player.Player, lib *uploads.Library, connected func() bool) metrics.Options {
	return metrics.Options{
		Player:  p,
		Version: version,
		Tracks:  func() int { return len(lib.Tracks()) },
		Disk: func() (metrics.Disk, error) {
			d := lib.Disk()
			return metrics.Disk{Free: d.FreeBytes, Total: d.TotalBytes}, nil
		},
		MQTTConnected: connected,
	}
}

// fleetOps adapts the player and library to what the MQTT agent commands.
type fleetOps struct {
	p   *player.Player
	lib *uploads.Library
}

func (o fleetOps) Status() any                  { return o.p.Status() }
func (o fleetOps) Tracks() any                  { return o.lib.Tracks() }
func (o fleetOps) Play()                        { o.p.Play() }
func (o fleetOps) Stop()                        { o.p.Stop() }
func (o fleetOps) Next()                        { o.p.Next() }
func (o fleetOps) SetVolume(v int)              { o.p.SetVolume(v) }
func (o fleetOps) RemoveTrack(id string) error  { return o.lib.Delete(id) }
func (o fleetOps) Reorder(order []string) error { return o.lib.Reorder(order) }
func (o fleetOps) AddTrack(ctx context.Context, name string, r io.Reader) (string, error) {
	t, _, err := o.lib.Ingest(ctx, name, r, nil)
	return t.ID, err
}
