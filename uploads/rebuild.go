package uploads

import (
	"context"
	"fmt"
	"math"
	"os"

	"github.com/mohproject/moh/internal/atomicfile"
)

// stale reports whether t's rendition was made with other loudness
// settings than the library's current ones.
func (l *Library) stale(t Track) bool {
	if t.Normalised == l.opts.NormaliseOff {
		return true
	}
	return t.Normalised && math.Abs(t.TargetLUFS-*l.opts.TargetLUFS) > 0.05
}

// rebuildStale re-renders, from the kept originals, every track whose
// rendition was made for another loudness target (the admin changed it),
// one at a time and in playlist order. The old rendition keeps playing
// until the new one replaces it by rename.
func (l *Library) rebuildStale(ctx context.Context) {
	for _, t := range l.Tracks() {
		if ctx.Err() != nil {
			return
		}
		if !l.stale(t) {
			continue
		}
		if err := l.rebuild(ctx, t); err != nil {
			l.log.Error("cannot rebuild rendition for the new loudness target", "id", t.ID, "name", t.Name, "err", err)
			continue
		}
	}
}

func (l *Library) rebuild(ctx context.Context, old Track) error {
	select {
	case l.work <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.work }()
	j := &job{id: old.ID, name: old.Name, orig: old.OriginalPath, size: old.Size, report: func(string, float64, int64) {}}
	_, err := l.process(ctx, j, func(rend string, t Track) error {
		return l.replaceRendition(rend, old, t)
	})
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", old.ID, err)
	}
	// The cached preview was made from the old rendition.
	l.prevMu.Lock()
	os.Remove(l.previewPath(old.ID))
	l.prevMu.Unlock()
	l.notify()
	return nil
}

// replaceRendition swaps in a rebuilt rendition and its new measurements,
// keeping the track's place, name and added time.
func (l *Library) replaceRendition(rend string, old, t Track) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := l.indexOf(old.ID)
	if i < 0 {
		return nil // deleted meanwhile; the temp rendition is removed by the caller
	}
	t.Added = old.Added
	if err := os.Chmod(rend, 0o644); err != nil {
		return fmt.Errorf("store rendition: %w", err)
	}
	if err := atomicfile.Commit(rend, t.Path); err != nil {
		return fmt.Errorf("store rendition: %w", err)
	}
	next := append([]Track(nil), l.tracks...)
	next[i] = t
	if err := l.writeIndex(next); err != nil {
		// The new rendition is in place but the index still shows the old
		// numbers; the next start rebuilds it again.
		return err
	}
	l.tracks = next
	l.log.Info("rendition rebuilt for the new loudness target", "id", t.ID, "name", t.Name,
		"lufs_after", t.LoudnessAfter, "target", t.TargetLUFS)
	return nil
}
