package main

import (
	"bytes"
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
	// write is atomicfile.WriteFile; tests make it fail at a chosen step.
	write func(path string, data []byte, perm os.FileMode) error
}

func newStateStore(dataDir string, log *slog.Logger) *stateStore {
	return &stateStore{path: filepath.Join(dataDir, stateFile), log: log, write: atomicfile.WriteFile}
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

// Save writes the settings atomically. An error means the file still
// holds the previous settings, so the player refuses the change and live,
// disk and the client's answer agree.
//
// The rename is the point of no return: if only the directory fsync after
// it fails, the file already holds the new settings and a restart comes
// back to them, so refusing the change would leave live and disk apart.
// That case is logged loudly and the change accepted; only a power cut
// before the kernel writes the directory out could still bring back the
// old settings.
func (s *stateStore) Save(st player.Settings) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := s.write(s.path, b, 0o644); err != nil {
		if now, rerr := os.ReadFile(s.path); rerr == nil && bytes.Equal(now, b) {
			s.log.Error("settings saved, but not yet durable: a power cut may bring back the previous ones", "path", s.path, "err", err)
			return nil
		}
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}
