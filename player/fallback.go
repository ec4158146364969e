package player

// This file holds the built-in hold music: what the line carries when the
// library is empty, so a fresh or wiped box is never silent. It is made by
// scripts/make-fallback.sh.

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mohproject/moh/internal/atomicfile"
)

// FallbackMP3 is a 12 s seamless loop in the house format (MPEG-1 Layer
// III, 44.1 kHz stereo, 128 kbit/s, LAME tag).
//
//go:embed fallback.mp3
var FallbackMP3 []byte

// FallbackFile is the name EnsureFallback gives the built-in track.
const FallbackFile = "fallback.mp3"

// EnsureFallback writes the built-in track to dir (atomically, and only if
// it is missing or differs, so a restart does not rewrite flash) and
// returns it as a Track both backends can play.
func EnsureFallback(dir string) (Track, error) {
	path := filepath.Join(dir, FallbackFile)
	t := Track{ID: "fallback", Name: "Built-in hold music", Path: path}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, FallbackMP3) {
		return t, nil
	}
	// Missing, different or unreadable: write it; if that cannot be done
	// the error says why.
	if err := atomicfile.WriteFile(path, FallbackMP3, 0o644); err != nil {
		return Track{}, fmt.Errorf("write built-in track: %w", err)
	}
	return t, nil
}
