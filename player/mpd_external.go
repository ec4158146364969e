package player

// This file is what differs for an MPD mohd does not own (MPDOptions.Addr):
// it is restarted by a command of the admin's, tracks reach it through
// its database (over TCP), and since mohd cannot listen to what it plays,
// the progress of its elapsed time stands in for the frames of the owned
// MPD's level output.

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/fhs/gompd/v2/mpd"
)

// externalProgress estimates the frames an MPD mohd does not own played,
// from its song and elapsed time advancing.
type externalProgress struct {
	lastSong int
	elapsed  time.Duration
	at       time.Time
}

// note takes one refresh's look at the MPD and, when it is playing and
// its position moved, counts the time since the last look as played.
func (p *externalProgress) note(m *MPD, playing bool, song int, elapsed time.Duration) {
	now := m.now()
	if playing && (song != p.lastSong || elapsed != p.elapsed) && !p.at.IsZero() {
		m.mu.Lock()
		m.seen.frames += uint64(now.Sub(p.at).Seconds() * SampleRate)
		m.seen.lastAudio = now
		m.mu.Unlock()
	}
	p.lastSong, p.elapsed, p.at = song, elapsed, now
}

// uri is what mohd adds to MPD's queue for a track. Over a unix socket
// MPD 0.23 plays any local file by file:// URI (measured), so the owned
// MPD needs no database update and the fallback track may live outside
// the rendition dir. Over TCP only paths inside RenditionDir (that MPD's
// music_directory) can be played.
func (o *mpdOwner) uri(t Track) (uri, file string, err error) {
	if o.m.network == "unix" {
		abs, err := filepath.Abs(t.Path)
		if err != nil {
			return "", "", err
		}
		return "file://" + abs, abs, nil
	}
	rel, err := filepath.Rel(o.m.o.RenditionDir, t.Path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return "", "", fmt.Errorf("%s is outside the rendition dir of an MPD reached over TCP", t.Path)
	}
	return rel, rel, nil
}

// updateDB runs MPD's database update and waits for it (TCP mode only,
// where tracks are played by their path in the database).
func (o *mpdOwner) updateDB() error {
	if err := o.conn.do("update", func(c *mpd.Client) error { _, err := c.Update(""); return err }); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := o.status()
		if err != nil {
			return err
		}
		if _, busy := st["updating_db"]; !busy {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("mpd database update did not finish in 60s")
}

// runRestartCommand restarts an MPD mohd does not own and waits for it.
func (o *mpdOwner) runRestartCommand(ctx context.Context) error {
	o.conn.close()
	cctx, cancel := context.WithTimeout(ctx, o.m.o.StartTimeout)
	defer cancel()
	args := o.m.o.RestartCommand
	out, err := exec.CommandContext(cctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mpd restart command: %w: %s", err, strings.TrimSpace(string(out)))
	}
	for {
		if err := probeMPD(cctx, o.m.network, o.m.addr, time.Second); err == nil {
			return nil
		}
		select {
		case <-cctx.Done():
			return fmt.Errorf("mpd not back after restart command: %w", cctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
