package uploads

// This file is the pipeline's last stage: the files into place, then the
// index entry that makes them a track.

import (
	"fmt"
	"os"

	"github.com/mohproject/moh/internal/atomicfile"
)

// commitTrack renames original and rendition into place, then adds the index
// entry. Until the index is written the track does not exist: a crash
// before that leaves files that Open removes.
func (l *Library) commitTrack(origTmp, rendTmp string, t Track) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := os.Chmod(origTmp, 0o644); err != nil {
		return fmt.Errorf("store original: %w", err)
	}
	if err := os.Chmod(rendTmp, 0o644); err != nil {
		return fmt.Errorf("store rendition: %w", err)
	}
	if err := atomicfile.Commit(origTmp, t.OriginalPath); err != nil {
		return fmt.Errorf("store original: %w", err)
	}
	if err := atomicfile.Commit(rendTmp, t.Path); err != nil {
		os.Remove(t.OriginalPath)
		return fmt.Errorf("store rendition: %w", err)
	}
	next := append(append([]Track(nil), l.tracks...), t)
	if err := l.writeIndex(next); err != nil {
		os.Remove(t.Path)
		os.Remove(t.OriginalPath)
		return fmt.Errorf("store track: %w", err)
	}
	l.tracks = next
	return nil
}

func fsyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}
