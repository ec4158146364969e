package sysupdate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
)

// Phase is where an update stands. The names are a public contract
// (state.json, the status document, the fleet link, mohctl).
type Phase string

// The phases, in the order an update passes them.
const (
	PhaseIdle        Phase = "idle"
	PhaseDownloading Phase = "downloading"
	PhaseVerifying   Phase = "verifying"
	PhaseInstalling  Phase = "installing"
	PhaseRebooting   Phase = "rebooting" // installed, the reboot into the new slot is pending
	PhaseTrial       Phase = "trial"     // booted into the new slot, not yet marked good
	PhaseGood        Phase = "good"
	PhaseRollback    Phase = "rollback"
	PhaseFailed      Phase = "failed"
)

// Phases lists every phase, for the metrics' info gauge.
var Phases = []Phase{PhaseIdle, PhaseDownloading, PhaseVerifying, PhaseInstalling,
	PhaseRebooting, PhaseTrial, PhaseGood, PhaseRollback, PhaseFailed}

// busy reports whether a phase is an update under way, which a second
// update must not disturb.
func (p Phase) busy() bool {
	switch p {
	case PhaseDownloading, PhaseVerifying, PhaseInstalling, PhaseRebooting, PhaseTrial:
		return true
	}
	return false
}

// State is DATA/update/state.json. The field names are the contract with
// the image (update-contract.md): add, never rename.
type State struct {
	Phase         Phase      `json:"phase"`
	TargetSlot    string     `json:"target_slot"`
	TargetVersion string     `json:"target_version"`
	FromVersion   string     `json:"from_version"`
	FromSlot      string     `json:"from_slot,omitempty"`
	Reason        string     `json:"reason"`
	UpdatedAt     time.Time  `json:"updated_at"`
	RebootAt      *time.Time `json:"reboot_at"`
	// BootID is the kernel's boot id when the install finished: a start
	// in the same boot is a mohd restart before the reboot, a start in
	// another boot is the first boot after it.
	BootID string `json:"boot_id,omitempty"`
	// RebootRequested is set just before mohd runs the reboot command.
	RebootRequested bool `json:"reboot_requested,omitempty"`
	// Rollbacks counts every rollback this box has made, kept here so
	// moh_update_rollbacks_total survives the reboot that follows one.
	Rollbacks uint64 `json:"rollbacks,omitempty"`
}

const stateFile = "state.json"

// loadState reads dir/state.json; a missing file is the idle state. A
// file that does not parse is reported, not guessed at: the caller starts
// idle and says so.
func loadState(dir string) (State, error) {
	raw, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return State{Phase: PhaseIdle}, nil
	}
	if err != nil {
		return State{Phase: PhaseIdle}, fmt.Errorf("read update state: %w", err)
	}
	var s State
	if err := json.Unmarshal(raw, &s); err != nil {
		return State{Phase: PhaseIdle}, fmt.Errorf("parse update state: %w", err)
	}
	if s.Phase == "" {
		s.Phase = PhaseIdle
	}
	return s, nil
}

func saveState(dir string, s State) error {
	return atomicfile.WriteJSON(filepath.Join(dir, stateFile), s, 0o640)
}
