package uploads

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
)

// Track is one library entry. Name is the original file name as metadata
// only: files are stored by content id, never by a client-chosen name.
type Track struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	Format   string        `json:"format"` // of the original: mp3, mp2, mp1, wav, flac, ogg
	Detail   string        `json:"detail"` // e.g. "MPEG-2.5 Layer III, 8000 Hz, mono, CBR"
	Duration time.Duration `json:"duration_ns"`
	// SampleRate and Channels describe the original; the rendition is
	// always 44.1 kHz stereo.
	SampleRate     int     `json:"sample_rate"`
	Channels       int     `json:"channels"`
	LoudnessBefore float64 `json:"loudness_before_lufs"`
	LoudnessAfter  float64 `json:"loudness_after_lufs"`
	TruePeakBefore float64 `json:"true_peak_before_dbtp"`
	TruePeakAfter  float64 `json:"true_peak_after_dbtp"`
	GainDB         float64 `json:"gain_db"`
	// Normalised and TargetLUFS record the settings the rendition was made
	// with, so a changed target rebuilds it from the original.
	Normalised bool      `json:"normalised"`
	TargetLUFS float64   `json:"target_lufs,omitempty"`
	Added      time.Time `json:"added"`
	Size       int64     `json:"size"` // bytes of the original
	// Path is the rendition (absolute), the file both players play.
	Path         string `json:"-"`
	OriginalPath string `json:"-"`
}

// Progress reports how far an ingest is. Fraction is 0..1 within the stage
// (0 while unknown, e.g. receiving a body of unknown length).
type Progress struct {
	Stage    string  `json:"stage"` // receiving, decoding, measuring, normalising, encoding, storing, done
	Fraction float64 `json:"fraction"`
	Bytes    int64   `json:"bytes,omitempty"` // received so far
}

// Library is the track store. All methods are safe for concurrent use.
type Library struct {
	opts    Options
	log     *slog.Logger
	store   string // DataDir/tracks
	origDir string
	rendDir string
	prevDir string
	index   string

	mu      sync.Mutex
	tracks  []Track       // playlist order
	work    chan struct{} // one decode/encode pipeline at a time: the box has few cores and a player to feed
	changes chan struct{}

	prevMu sync.Mutex // one preview rendering at a time
	// indexLost: the index was missing or unreadable at Open, so stored
	// originals without an entry are the library itself, not the remains
	// of an unacknowledged upload.
	indexLost bool
	refused   refusedLog
	disk      diskCache
	// primeOverride replaces defaultPrime (loopprime.go) in tests that
	// measure what priming gains: 0 keeps the default, < 0 turns it off.
	primeOverride int
}

type indexFile struct {
	Version int     `json:"version"`
	Tracks  []Track `json:"tracks"`
}

// Open prepares the store under opts.DataDir: it removes temp files left by
// an interrupted ingest, loads the index and reconciles it with the files,
// so a crash at any point leaves neither a partial track nor an orphan.
func Open(opts Options) (*Library, error) {
	if opts.DataDir == "" {
		return nil, errors.New("open library: no data directory")
	}
	opts.setDefaults()
	store := filepath.Join(opts.DataDir, "tracks")
	l := &Library{
		opts:    opts,
		log:     opts.Logger.With("component", "uploads"),
		store:   store,
		origDir: filepath.Join(store, "originals"),
		rendDir: filepath.Join(store, "renditions"),
		prevDir: filepath.Join(store, "previews"),
		index:   filepath.Join(store, "index.json"),
		work:    make(chan struct{}, 1),
		changes: make(chan struct{}, 1),
	}
	for _, d := range []string{store, l.origDir, l.rendDir, l.prevDir, opts.MusicDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open library: %w", err)
		}
	}
	// An ingest's temp files carry no lock (tools reopen them by name), so
	// this sweep is safe only because the one process holding the data dir
	// (internal/datadir; mohd run takes it first) opens the library, and
	// before any ingest of its own starts.
	for _, d := range []string{store, l.origDir, l.rendDir, l.prevDir} {
		n, err := atomicfile.CleanTemps(d)
		if err != nil {
			return nil, fmt.Errorf("open library: clean temp files: %w", err)
		}
		if n > 0 {
			l.log.Info("removed temp files of an interrupted ingest", "dir", d, "count", n)
		}
	}
	if err := l.load(); err != nil {
		return nil, fmt.Errorf("open library: %w", err)
	}
	if err := l.reconcile(); err != nil {
		return nil, fmt.Errorf("open library: %w", err)
	}
	return l, nil
}

func (l *Library) load() error {
	b, err := os.ReadFile(l.index)
	if errors.Is(err, os.ErrNotExist) {
		// First start, or the index was removed by hand: in the latter
		// case the originals must not be taken for orphans.
		l.indexLost = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("read index: %w", err)
	}
	var ix indexFile
	if err := json.Unmarshal(b, &ix); err != nil {
		// The index is only ever replaced atomically, so this is damage
		// from outside moh; keep the evidence and start from the files.
		bad := l.index + ".corrupt"
		os.Rename(l.index, bad)
		l.log.Error("index unreadable, set aside; the originals go back through the music folder", "err", err, "kept", bad)
		l.indexLost = true
		return nil
	}
	for _, t := range ix.Tracks {
		if !validID(t.ID) {
			l.log.Warn("dropping index entry with an invalid id", "id", t.ID)
			continue
		}
		l.fillPaths(&t)
		l.tracks = append(l.tracks, t)
	}
	return nil
}

func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (l *Library) fillPaths(t *Track) {
	t.Path = filepath.Join(l.rendDir, t.ID+".mp3")
	t.OriginalPath = filepath.Join(l.origDir, t.ID+"."+t.Format)
}

// reconcile makes index and files agree: an entry whose files are gone is
// dropped, and files no entry refers to (a crash between storing them and
// writing the index: the upload was never acknowledged) are removed.
func (l *Library) reconcile() error {
	keep := l.tracks[:0]
	known := map[string]bool{}
	dropped := 0
	for _, t := range l.tracks {
		_, e1 := os.Stat(t.Path)
		_, e2 := os.Stat(t.OriginalPath)
		if e1 != nil || e2 != nil || known[t.ID] {
			l.log.Warn("dropping track whose files are missing", "id", t.ID, "name", t.Name)
			dropped++
			continue
		}
		known[filepath.Base(t.Path)] = true
		known[filepath.Base(t.OriginalPath)] = true
		known[t.ID] = true
		keep = append(keep, t)
	}
	l.tracks = keep
	if dropped > 0 {
		if err := l.writeIndex(l.tracks); err != nil {
			return err
		}
	}
	for _, d := range []string{l.origDir, l.rendDir, l.prevDir} {
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("reconcile %s: %w", d, err)
		}
		removed := 0
		for _, e := range entries {
			name := e.Name()
			if d == l.prevDir {
				name = strings.TrimSuffix(name, ".wav")
				if known[name] {
					continue
				}
			} else if known[name] {
				continue
			}
			if d == l.origDir && l.indexLost && !strings.HasPrefix(e.Name(), ".") {
				// Re-ingest through the music folder rather than lose it.
				dst := filepath.Join(l.opts.MusicDir, "recovered-"+e.Name())
				if err := os.Rename(filepath.Join(d, e.Name()), dst); err == nil {
					l.log.Warn("original without index entry handed back to the music folder for re-ingest", "file", dst)
					removed++
					continue
				}
			}
			if err := os.RemoveAll(filepath.Join(d, e.Name())); err == nil {
				removed++
				l.log.Info("removed file of an unfinished ingest", "file", filepath.Join(d, e.Name()))
			}
		}
		if removed > 0 {
			if err := atomicfile.SyncDir(d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Library) writeIndex(tracks []Track) error {
	if err := atomicfile.WriteJSON(l.index, indexFile{Version: 1, Tracks: tracks}, 0o644); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

// Tracks returns the library in playlist order.
func (l *Library) Tracks() []Track {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Track(nil), l.tracks...)
}

// Get returns one track.
func (l *Library) Get(id string) (Track, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range l.tracks {
		if t.ID == id {
			return t, true
		}
	}
	return Track{}, false
}

// Changes is signalled after every change of the track list or its order.
// Signals coalesce: after receiving, read Tracks for the current state.
func (l *Library) Changes() <-chan struct{} { return l.changes }

func (l *Library) notify() {
	l.disk.invalidate() // a track came or went: free space changed
	select {
	case l.changes <- struct{}{}:
	default:
	}
}

func notFound(id string) error {
	return &Refusal{Code: CodeNotFound, Message: fmt.Sprintf("no track with id %q", id)}
}

// Delete removes a track: first from the index (so a crash never leaves an
// entry pointing at deleted files), then its files.
func (l *Library) Delete(id string) error {
	l.mu.Lock()
	i := l.indexOf(id)
	if i < 0 {
		l.mu.Unlock()
		return notFound(id)
	}
	t := l.tracks[i]
	next := append(append([]Track(nil), l.tracks[:i]...), l.tracks[i+1:]...)
	err := l.writeIndex(next)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		// On a full disk, deleting tracks is how the admin makes room, so
		// it must not need room itself: the track's preview is a cache
		// that can go first, then the index is written again.
		l.prevMu.Lock()
		perr := os.Remove(l.previewPath(id))
		l.prevMu.Unlock()
		if perr == nil {
			l.log.Warn("disk full: removed the deleted track's preview first to make room for the index", "id", id)
			err = l.writeIndex(next)
		}
	}
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("delete %s: %w", id, err)
	}
	l.tracks = next
	l.mu.Unlock()
	l.notify()

	l.prevMu.Lock()
	defer l.prevMu.Unlock()
	for _, p := range []string{t.Path, t.OriginalPath, l.previewPath(id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			// The entry is gone; the file is an orphan that the next Open removes.
			l.log.Warn("cannot remove file of a deleted track", "file", p, "err", err)
		}
	}
	for _, d := range []string{l.rendDir, l.origDir, l.prevDir} {
		atomicfile.SyncDir(d)
	}
	l.log.Info("track deleted", "id", id, "name", t.Name)
	return nil
}

func (l *Library) indexOf(id string) int {
	for i, t := range l.tracks {
		if t.ID == id {
			return i
		}
	}
	return -1
}

// Reorder sets the playlist order; ids must name every track exactly once.
func (l *Library) Reorder(ids []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	byID := map[string]Track{}
	for _, t := range l.tracks {
		byID[t.ID] = t
	}
	seen := map[string]bool{}
	next := make([]Track, 0, len(ids))
	for _, id := range ids {
		t, ok := byID[id]
		switch {
		case !ok:
			return refuse(CodeBadOrder, fmt.Sprintf("the order names %q, which is not in the library", id))
		case seen[id]:
			return refuse(CodeBadOrder, fmt.Sprintf("the order names %q twice", id))
		}
		seen[id] = true
		next = append(next, t)
	}
	if len(next) != len(l.tracks) {
		var missing []string
		for _, t := range l.tracks {
			if !seen[t.ID] {
				missing = append(missing, t.ID)
			}
		}
		return refuse(CodeBadOrder, fmt.Sprintf("the order must list all %d tracks; missing: %s", len(l.tracks), strings.Join(missing, ", ")))
	}
	if err := l.writeIndex(next); err != nil {
		return fmt.Errorf("reorder: %w", err)
	}
	l.tracks = next
	l.notify()
	return nil
}
