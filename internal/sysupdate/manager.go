package sysupdate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Files of the one bundle the box may hold, in Options.Dir.
const (
	bundleFile = "bundle.raucb"
	bundleTemp = "bundle.raucb.tmp"
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

// Slots reads both root slots from RAUC.
func (m *Manager) Slots(ctx context.Context) (RaucStatus, error) {
	if !m.On() {
		return RaucStatus{}, ErrOff
	}
	return m.o.Runner.Status(ctx)
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

func (m *Manager) removeBundles() {
	os.Remove(filepath.Join(m.o.Dir, bundleTemp))
	os.Remove(filepath.Join(m.o.Dir, bundleFile))
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

func parseSHA(s string, required bool) ([]byte, error) {
	if s == "" && !required {
		return nil, nil
	}
	b, err := hex.DecodeString(strings.ToLower(s))
	if err != nil || len(b) != sha256.Size {
		return nil, &BadRequest{Reason: fmt.Sprintf("sha256 %q: want 64 hex digits", s)}
	}
	return b, nil
}

// checkSpace refuses a bundle of size bytes (0: unknown) that would not
// fit with the margin, before a byte is written.
func (m *Manager) checkSpace(size int64) error {
	free, err := m.o.FreeBytes(m.o.Dir)
	if err != nil {
		return fmt.Errorf("free space of %s: %w", m.o.Dir, err)
	}
	need := uint64(spaceMargin)
	if size > 0 {
		need += uint64(size)
	}
	if need > free {
		return &NoSpace{Need: need, Free: free}
	}
	return nil
}

// Upload takes a bundle streamed from r (size is the sender's announced
// length, 0 if unknown), verifies it and starts the install. It returns
// once the bundle is accepted or refused; the install goes on in the
// background, visible in Status. A refused bundle leaves the slots as
// they were.
func (m *Manager) Upload(ctx context.Context, r io.Reader, size int64, req Request) (Status, error) {
	want, err := parseSHA(req.SHA256, false)
	if err != nil {
		return Status{}, err
	}
	at, err := m.begin(req)
	if err != nil {
		return Status{}, err
	}
	if err := m.checkSpace(size); err != nil {
		m.end()
		return Status{}, err
	}
	return m.receive(ctx, r, want, at)
}

// Fetch downloads a bundle over HTTPS (trusting what Options.Client
// trusts), verifies it and starts the install, like Upload.
func (m *Manager) Fetch(ctx context.Context, rawURL string, req Request) (Status, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return Status{}, &BadRequest{Reason: fmt.Sprintf("url %q: only https:// URLs are accepted", rawURL)}
	}
	want, err := parseSHA(req.SHA256, true)
	if err != nil {
		return Status{}, err
	}
	at, err := m.begin(req)
	if err != nil {
		return Status{}, err
	}
	m.set(PhaseDownloading, "")
	fail := func(err error) (Status, error) {
		m.fail(err)
		m.end()
		return Status{}, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(&BadRequest{Reason: err.Error()})
	}
	resp, err := httpsOnly(m.o.Client).Do(hreq)
	if err != nil {
		return fail(&DownloadError{Err: fmt.Errorf("%s: %w", u.Redacted(), err)})
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(&DownloadError{Err: fmt.Errorf("%s: http status %s", u.Redacted(), resp.Status)})
	}
	if resp.ContentLength > m.o.MaxBundleBytes {
		return fail(&Refused{Code: "bundle_refused", Reason: fmt.Sprintf("the bundle is %d bytes, over the limit of %d", resp.ContentLength, m.o.MaxBundleBytes)})
	}
	if err := m.checkSpace(resp.ContentLength); err != nil {
		return fail(err)
	}
	return m.receive(ctx, downloadBody{resp.Body}, want, at)
}

// downloadBody tags a read error of a fetched bundle as the download's.
type downloadBody struct{ r io.Reader }

func (d downloadBody) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = &DownloadError{Err: err}
	}
	return n, err
}

// fail ends an update that was refused or broke before the install.
func (m *Manager) fail(err error) {
	m.removeBundles()
	m.set(PhaseFailed, err.Error())
	m.event("update: failed: " + err.Error())
}

// receive streams the bundle to disk, verifies it and hands it to the
// installer. m.running is held and released here.
func (m *Manager) receive(ctx context.Context, r io.Reader, want []byte, at time.Time) (Status, error) {
	fail := func(err error) (Status, error) {
		m.fail(err)
		m.end()
		return Status{}, err
	}
	if m.Status().Phase != PhaseDownloading {
		m.set(PhaseDownloading, "")
	}
	tmp := filepath.Join(m.o.Dir, bundleTemp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fail(fmt.Errorf("create bundle file: %w", err))
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, m.o.MaxBundleBytes+1))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(fmt.Errorf("receive bundle: %w", err))
	}
	if n > m.o.MaxBundleBytes {
		return fail(&Refused{Code: "bundle_refused", Reason: fmt.Sprintf("the bundle is over the limit of %d bytes", m.o.MaxBundleBytes)})
	}
	if n == 0 {
		return fail(&Refused{Code: "bundle_refused", Reason: "the bundle is empty"})
	}
	m.set(PhaseVerifying, "")
	if got := h.Sum(nil); want != nil && !bytesEqual(got, want) {
		return fail(&Refused{Code: "sha256_mismatch", Reason: fmt.Sprintf("sha256 mismatch: the bundle hashes to %x, the request promised %x", got, want)})
	}
	bundle := filepath.Join(m.o.Dir, bundleFile)
	if err := os.Rename(tmp, bundle); err != nil {
		return fail(fmt.Errorf("keep bundle: %w", err))
	}
	info, err := m.o.Runner.Info(ctx, bundle)
	if err != nil {
		return fail(&Refused{Code: "bundle_refused", Reason: "bundle refused: " + err.Error()})
	}
	sys, err := m.o.Runner.Status(ctx)
	if err != nil {
		return fail(fmt.Errorf("read slots: %w", err))
	}
	if info.Compatible != sys.Compatible {
		return fail(&Refused{Code: "bundle_refused", Reason: fmt.Sprintf("bundle refused: it is for %q, this box is %q", info.Compatible, sys.Compatible)})
	}
	target := ""
	for _, s := range sys.Slots {
		if !s.Booted {
			target = s.Bootname
			break
		}
	}
	if target == "" {
		return fail(fmt.Errorf("no inactive slot to install into (booted %q)", sys.Booted))
	}
	m.mu.Lock()
	m.st.TargetSlot, m.st.TargetVersion = target, info.Version
	m.st.FromVersion, m.st.FromSlot = m.o.Version, sys.Booted
	m.st.RebootAt, m.st.BootID, m.st.RebootRequested = nil, "", false
	m.setLocked(PhaseInstalling, "")
	base := m.baseCtx
	m.mu.Unlock()
	m.event(fmt.Sprintf("update: installing %s into slot %s", info.Version, target))
	go m.install(base, bundle, at)
	return m.Status(), nil
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// install runs RAUC and leaves the box waiting for its reboot.
func (m *Manager) install(ctx context.Context, bundle string, at time.Time) {
	err := m.o.Runner.Install(ctx, bundle, func(pct int, msg string) {
		m.mu.Lock()
		m.progress, m.message = pct, msg
		m.mu.Unlock()
	})
	m.removeBundles()
	if err != nil {
		m.mu.Lock()
		m.running = false
		m.setLocked(PhaseFailed, "install: "+err.Error())
		m.mu.Unlock()
		m.event("update: install failed: " + err.Error())
		return
	}
	m.mu.Lock()
	// The phase and the end of the job change together: a Step that sees
	// "rebooting" may act on it at once.
	m.running = false
	at = at.UTC()
	m.st.RebootAt = &at
	m.st.BootID = m.o.BootID()
	m.progress = 100
	m.setLocked(PhaseRebooting, "")
	v, slot := m.st.TargetVersion, m.st.TargetSlot
	m.mu.Unlock()
	m.event(fmt.Sprintf("update: %s installed in slot %s; reboot at %s", v, slot, at.Format(time.RFC3339)))
}

// httpsOnly refuses redirects away from https: the sha256 guards the
// content, but a downgrade would tell anyone on the path what the box
// fetches.
func httpsOnly(client *http.Client) *http.Client {
	c := *client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return errors.New("redirect to a non-https URL refused")
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
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
