package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/player"
)

// stateFile holds the admin's wanted settings (volume, playing or
// stopped). It is written only when they change, atomically, so a power
// cut at any instant leaves the old or the new settings.
const stateFile = "state.json"

type stateStore struct {
	path string
	log  *slog.Logger
}

func newStateStore(dataDir string, log *slog.Logger) *stateStore {
	return &stateStore{path: filepath.Join(dataDir, stateFile), log: log}
}

// Load returns the saved settings, or the defaults when none were saved
// or the file is unreadable (which atomic writes make a sign of outside
// damage, so it is logged loudly, and playback goes on rather than staying
// silent).
func (s *stateStore) Load() player.Settings {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return player.DefaultSettings
	}
	if err != nil {
		s.log.Error("read state, using defaults", "path", s.path, "err", err)
		return player.DefaultSettings
	}
	st := player.DefaultSettings
	if err := json.Unmarshal(b, &st); err != nil {
		s.log.Error("state file damaged, using defaults", "path", s.path, "err", err)
		return player.DefaultSettings
	}
	st.Volume = min(max(st.Volume, 0), 100)
	return st
}

// Save writes the settings atomically.
func (s *stateStore) Save(st player.Settings) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}
