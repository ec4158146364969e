package sysupdate

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults of Options.
const (
	DefaultHealthyFor = 60 * time.Second
	DefaultDeadline   = 5 * time.Minute
	DefaultMaxBundle  = 2 << 30 // 2 GiB: a root filesystem, never a library
	// spaceMargin is kept free beyond the bundle: RAUC and mohd's own
	// state still need to write after the download.
	spaceMargin = 16 << 20
	// rebootRetry spaces reboot attempts whose command failed.
	rebootRetry  = time.Minute
	fetchTimeout = 30 * time.Minute
)

// Options configure a Manager. Clock, RAUC, reboot, boot id and free
// space are injectable so the boot rules are tested with a fake clock.
type Options struct {
	// Runner is RAUC; nil means update = off.
	Runner Runner
	// Dir is DATA/update: state.json and the one bundle.
	Dir string
	// Version is the running mohd's version, the "from" of an update.
	Version string
	// Healthy reports mohd's health verdict is ok or warning.
	Healthy func() bool
	// Reboot reboots the box (mohd's --reboot-command).
	Reboot func(ctx context.Context) error
	// Now is the clock (default time.Now).
	Now func() time.Time
	// HealthyFor is how long health must hold before mark-good
	// (update-healthy); Deadline is how long a new slot has to get there
	// (update-deadline).
	HealthyFor, Deadline time.Duration
	// Event is told what an operator should see in the event log.
	Event func(msg string)
	// OnRollback is called on each rollback, for the metrics.
	OnRollback func()
	Logger     *slog.Logger
	// BootID is the kernel's boot id (default
	// /proc/sys/kernel/random/boot_id).
	BootID func() string
	// MaxBundleBytes caps a bundle (default 2 GiB).
	MaxBundleBytes int64
	// FreeBytes reports the free space of a directory's filesystem
	// (default statfs).
	FreeBytes func(dir string) (uint64, error)
	// Client fetches bundle URLs; it should trust the fleet CA.
	Client *http.Client
	// Tick is how often the boot rules are evaluated (default 1 s).
	Tick time.Duration
}

// Status is the "update" object of the status document and of
// GET /api/v1/system. Its JSON names are a public contract.
type Status struct {
	// Update is "rauc" or "off".
	Update        string     `json:"update"`
	Phase         Phase      `json:"phase"`
	Progress      int        `json:"progress"`
	Message       string     `json:"message,omitempty"`
	TargetSlot    string     `json:"target_slot,omitempty"`
	TargetVersion string     `json:"target_version,omitempty"`
	FromVersion   string     `json:"from_version,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	UpdatedAt     *time.Time `json:"updated_at,omitempty"`
	RebootAt      *time.Time `json:"reboot_at,omitempty"`
}

// Request is what an update is asked to do beside the bundle.
type Request struct {
	// SHA256 is the bundle's expected hash: required for a URL, checked
	// when given with an upload.
	SHA256 string
	// Reboot is "now" (or empty) or a local time "HH:MM".
	Reboot string
}

// Manager runs updates and the boot rules of one box.
type Manager struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	st       State
	running  bool // a request or an install holds the updater
	progress int
	message  string
	baseCtx  context.Context

	// Boot-rule memory of this process: when it started (the trial
	// deadline counts from there), since when health has held, whether
	// the booted slot has been checked against the state and, in steady
	// state, marked good.
	started      time.Time
	healthySince time.Time
	bootChecked  bool
	steadyDone   bool
	rebootWanted bool
	lastReboot   time.Time

	// slotsMu guards slots, the kept `rauc status` answer Slots serves
	// (statuscache.go); empty at start.
	slotsMu sync.Mutex
	slots   slotsCache
}

// New loads the state and clears what an interrupted update left: a
// download, verification or install cut by a power cut or a kill is
// reported failed (RAUC left the target slot marked bad, so it is never
// booted half-written) and its bundle removed.
func New(o Options) (*Manager, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HealthyFor <= 0 {
		o.HealthyFor = DefaultHealthyFor
	}
	if o.Deadline <= 0 {
		o.Deadline = DefaultDeadline
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BootID == nil {
		o.BootID = kernelBootID
	}
	if o.MaxBundleBytes <= 0 {
		o.MaxBundleBytes = DefaultMaxBundle
	}
	if o.FreeBytes == nil {
		o.FreeBytes = statfsFree
	}
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.Healthy == nil {
		o.Healthy = func() bool { return false }
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: fetchTimeout}
	}
	m := &Manager{o: o, log: o.Logger.With("component", "update"), baseCtx: context.Background(), started: o.Now()}
	if o.Runner == nil {
		m.st = State{Phase: PhaseIdle}
		return m, nil
	}
	m.o.Runner = slotsChanging{Runner: o.Runner, m: m}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create %s: %w", o.Dir, err)
	}
	st, err := loadState(o.Dir)
	if err != nil {
		m.log.Warn("update state unreadable; starting idle", "err", err)
	}
	m.st = st
	switch st.Phase {
	case PhaseDownloading, PhaseVerifying, PhaseInstalling:
		m.setLocked(PhaseFailed, fmt.Sprintf("interrupted while %s (mohd restarted or the power was cut); nothing was booted", st.Phase))
		m.event("update: failed: " + m.st.Reason)
	}
	m.removeBundles()
	return m, nil
}

// On reports whether updates are on (RAUC present).
func (m *Manager) On() bool { return m.o.Runner != nil }

// Status is the update's state for the status document.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.On() {
		return Status{Update: "off", Phase: PhaseIdle}
	}
	s := Status{Update: "rauc", Phase: m.st.Phase, Progress: m.progress, Message: m.message,
		TargetSlot: m.st.TargetSlot, TargetVersion: m.st.TargetVersion, FromVersion: m.st.FromVersion,
		Reason: m.st.Reason, RebootAt: m.st.RebootAt}
	if !m.st.UpdatedAt.IsZero() {
		t := m.st.UpdatedAt
		s.UpdatedAt = &t
	}
	return s
}

// Rollbacks counts the box's rollbacks (kept in state.json), for
// moh_update_rollbacks_total.
func (m *Manager) Rollbacks() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Rollbacks
}

// setLocked moves to a phase and persists it; m.mu is held (or the
// manager is not shared yet).
func (m *Manager) setLocked(p Phase, reason string) {
	m.st.Phase = p
	m.st.Reason = reason
	m.st.UpdatedAt = m.o.Now().UTC()
	if p == PhaseRollback {
		m.st.Rollbacks++
		if m.o.OnRollback != nil {
			m.o.OnRollback()
		}
	}
	if err := saveState(m.o.Dir, m.st); err != nil {
		m.log.Error("save update state", "err", err)
	}
}

func (m *Manager) set(p Phase, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setLocked(p, reason)
}

func (m *Manager) event(msg string) {
	m.log.Info(msg)
	if m.o.Event != nil {
		m.o.Event(msg)
	}
}

// begin takes the updater for one request, or says why not.
func (m *Manager) begin(req Request) (time.Time, error) {
	if !m.On() {
		return time.Time{}, ErrOff
	}
	at, err := m.rebootTime(req.Reboot)
	if err != nil {
		return time.Time{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running || m.st.Phase.busy() {
		return time.Time{}, ErrBusy
	}
	m.running = true
	m.progress, m.message = 0, ""
	return at, nil
}

func (m *Manager) end() {
	m.mu.Lock()
	m.running = false
	m.mu.Unlock()
}

// rebootTime turns "now" or "HH:MM" (the box's local time) into the
// moment of the reboot: the next such time, today or tomorrow.
func (m *Manager) rebootTime(s string) (time.Time, error) {
	now := m.o.Now()
	if s == "" || s == "now" {
		return now, nil
	}
	t, err := time.ParseInLocation("15:04", s, now.Location())
	if err != nil || len(s) != 5 {
		return time.Time{}, &BadRequest{Reason: fmt.Sprintf("reboot %q: want now or a local time HH:MM", s)}
	}
	at := time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), 0, 0, now.Location())
	if !at.After(now) {
		at = at.AddDate(0, 0, 1)
	}
	return at, nil
}

func kernelBootID() string {
	raw, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(raw))
}

func statfsFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
