package player

// This file keeps the MPD backend's queue in sync with the wanted
// playlist: the track on air plays on when it is still listed, what MPD
// refuses is left out and reported once, and a file that vanished is
// dropped.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/fhs/gompd/v2/mpd"
)

// queued is one queue entry mohd put into MPD.
type queued struct {
	track Track
	index int    // index in the wanted playlist
	file  string // MPD's "file" for it
	uri   string // what mohd added
}

// syncQueue makes MPD's queue the wanted playlist without interrupting
// the song on air when it is still in the playlist: every other entry is
// deleted and the rest added around it in one command list.
func (o *mpdOwner) syncQueue(tracks []Track) error {
	var want []queued
	for i, t := range tracks {
		fi, err := os.Stat(t.Path)
		if err != nil {
			o.m.skips.add(t, fmt.Sprintf("cannot read: %v", err))
			continue
		}
		uri, file, err := o.uri(t)
		if err != nil {
			o.m.skips.add(t, err.Error())
			continue
		}
		if at, ok := o.refused[uri]; ok && at.Equal(fi.ModTime()) {
			continue // refused before and unchanged since: already reported
		}
		want = append(want, queued{track: t, index: i, file: file, uri: uri})
	}
	if o.m.network == "tcp" {
		if err := o.updateDB(); err != nil {
			return err
		}
	}
	var items []mpd.Attrs
	if err := o.conn.do("playlistinfo", func(c *mpd.Client) error {
		var err error
		items, err = c.PlaylistInfo(-1, -1)
		return err
	}); err != nil {
		return err
	}
	same := len(items) == len(want)
	for i := 0; same && i < len(items); i++ {
		same = items[i]["file"] == want[i].file
	}
	if same {
		o.queue = want
		return o.noteQueueVersion()
	}
	st, err := o.status()
	if err != nil {
		return err
	}
	cur, _ := strconv.Atoi(st["song"])
	curID := st["songid"]
	keep := -1
	if curID != "" && cur >= 0 && cur < len(items) {
		for i, q := range want {
			if q.file == items[cur]["file"] && (keep < 0 || i == cur) {
				keep = i
			}
		}
	}
	err = o.conn.do("queue", func(c *mpd.Client) error {
		cl := c.BeginCommandList()
		if keep < 0 {
			cl.Clear()
			for _, q := range want {
				cl.Add(q.uri)
			}
		} else {
			for _, it := range items {
				if it["Id"] != curID {
					id, _ := strconv.Atoi(it["Id"])
					cl.DeleteID(id)
				}
			}
			for i := 0; i < keep; i++ {
				cl.AddID(want[i].uri, i)
			}
			for _, q := range want[keep+1:] {
				cl.Add(q.uri)
			}
		}
		return cl.End()
	})
	var ack mpd.Error
	if errors.As(err, &ack) {
		// MPD refused one entry; the list stopped half-way. Build the
		// queue one track at a time, leaving out (and reporting) what
		// MPD refuses, so the next refresh does not retry forever.
		o.log.Warn("mpd refused the queue; adding tracks one by one", "err", err)
		want, err = o.addEach(want)
		keep = -1
	}
	if err != nil {
		return err
	}
	o.queue = want
	o.log.Info("mpd queue rebuilt", "tracks", len(want), "kept_on_air", keep >= 0)
	if keep < 0 && len(want) > 0 && st["state"] == "play" {
		// The song on air was removed: start the new playlist.
		if err := o.conn.do("play", func(c *mpd.Client) error { return c.Play(0) }); err != nil {
			return err
		}
	}
	return o.noteQueueVersion()
}

// addEach rebuilds the queue track by track and returns what MPD took.
func (o *mpdOwner) addEach(want []queued) ([]queued, error) {
	if err := o.conn.do("clear", func(c *mpd.Client) error { return c.Clear() }); err != nil {
		return nil, err
	}
	var took []queued
	for _, q := range want {
		err := o.conn.do("add", func(c *mpd.Client) error { return c.Add(q.uri) })
		var ack mpd.Error
		switch {
		case errors.As(err, &ack):
			o.m.skips.add(q.track, "mpd refused it: "+ack.Message)
			if fi, err := os.Stat(q.track.Path); err == nil {
				if o.refused == nil {
					o.refused = map[string]time.Time{}
				}
				o.refused[q.uri] = fi.ModTime()
			}
		case err != nil:
			return nil, err
		default:
			took = append(took, q)
		}
	}
	return took, nil
}

// noteQueueVersion remembers MPD's playlist version after mohd's change,
// so a change by anyone else is noticed and undone.
func (o *mpdOwner) noteQueueVersion() error {
	st, err := o.status()
	if err != nil {
		return err
	}
	o.queueVer = st["playlist"]
	return nil
}

// queueLost reports whether a queued file has disappeared.
func (o *mpdOwner) queueLost() bool {
	for _, q := range o.queue {
		if _, err := os.Stat(q.track.Path); err != nil {
			return true
		}
	}
	return false
}
