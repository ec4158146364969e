package main

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/mohproject/moh/internal/metrics"
	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/internal/sysinfo"
	"github.com/mohproject/moh/internal/sysupdate"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/uploads"
)

// libraryOptions turns mohd's settings (already within their ranges,
// checkRun) into the library's.
func libraryOptions(c *config, log *slog.Logger, onEvent func(kind, msg string)) (uploads.Options, error) {
	if err := c.checkRun(); err != nil {
		return uploads.Options{}, err
	}
	o := uploads.Options{
		DataDir:     c.Data,
		MusicDir:    c.Music,
		MaxBytes:    c.MaxUploadMB << 20,
		MaxDuration: time.Duration(c.MaxMinutes) * time.Minute,
		Logger:      log,
		OnEvent:     onEvent,
	}
	// --min-free-mb 0 means no margin: an upload is refused only when it
	// does not fit. The library reads 0 as its own default (100 MiB), so
	// that is asked for as its smallest margin, one byte.
	o.MinFreeBytes = c.MinFreeMB << 20
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 1
	}
	lufs, off, _ := parseTargetLUFS(c.TargetLUFS)
	if off {
		o.NormaliseOff = true
	} else {
		o.TargetLUFS = &lufs
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

// metricsOptions feeds Prometheus from the player and the library.
func metricsOptions(p *player.Player, lib *uploads.Library, sys *sysinfo.Reporter, connected func() bool) metrics.Options {
	return metrics.Options{
		System:  sys.Read,
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
	upd *sysupdate.Manager // the fleet's `update` command (update.go)
	// prog is the programme (fleet_programme.go); its zero value has none.
	prog programmeAPI
	// doc builds the status document (the web server's StatusDoc).
	doc func() status.Doc
}

// Status is the document GET /api/v1/status serves (the web server builds
// it), so mohctl sees the same whichever way it reaches the box.
func (o fleetOps) Status() status.Doc { return o.doc() }

func (o fleetOps) Tracks() any                  { return o.lib.Tracks() }
func (o fleetOps) Play() error                  { return o.p.Play() }
func (o fleetOps) Stop() error                  { return o.p.Stop() }
func (o fleetOps) Next()                        { o.p.Next() }
func (o fleetOps) SetVolume(v int) error        { return o.p.SetVolume(v) }
func (o fleetOps) RemoveTrack(id string) error  { return o.lib.Delete(id) }
func (o fleetOps) Reorder(order []string) error { return o.lib.Reorder(order) }
func (o fleetOps) AddTrack(ctx context.Context, name string, r io.Reader) (string, error) {
	t, _, err := o.lib.Ingest(ctx, name, r, nil)
	return t.ID, err
}
