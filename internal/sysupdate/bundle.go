package sysupdate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mohproject/moh/internal/httpsonly"
)

// A bundle's way in: uploaded or fetched over HTTPS, checked for size,
// space and hash, verified by RAUC and installed into the inactive slot.

// Files of the one bundle the box may hold, in Options.Dir.
const (
	bundleFile = "bundle.raucb"
	bundleTemp = "bundle.raucb.tmp"
)

func (m *Manager) removeBundles() {
	os.Remove(filepath.Join(m.o.Dir, bundleTemp))
	os.Remove(filepath.Join(m.o.Dir, bundleFile))
}

// start checks the request's hash (shaRequired for a URL, whose bundle
// nothing else vouches for) before it takes the updater, so a malformed
// request never holds it.
func (m *Manager) start(req Request, shaRequired bool) (want []byte, rebootAt time.Time, err error) {
	if want, err = parseSHA(req.SHA256, shaRequired); err != nil {
		return nil, time.Time{}, err
	}
	if rebootAt, err = m.begin(req); err != nil {
		return nil, time.Time{}, err
	}
	return want, rebootAt, nil
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
	want, at, err := m.start(req, false)
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
	want, at, err := m.start(req, true)
	if err != nil {
		return Status{}, err
	}
	m.set(PhaseDownloading, "")
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return m.abort(&BadRequest{Reason: err.Error()})
	}
	resp, err := httpsonly.Client(m.o.Client).Do(hreq)
	if err != nil {
		return m.abort(&DownloadError{Err: fmt.Errorf("%s: %w", u.Redacted(), err)})
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m.abort(&DownloadError{Err: fmt.Errorf("%s: http status %s", u.Redacted(), resp.Status)})
	}
	if resp.ContentLength > m.o.MaxBundleBytes {
		return m.abort(&Refused{Code: "bundle_refused", Reason: fmt.Sprintf("the bundle is %d bytes, over the limit of %d", resp.ContentLength, m.o.MaxBundleBytes)})
	}
	if err := m.checkSpace(resp.ContentLength); err != nil {
		return m.abort(err)
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

// abort fails the update and releases the updater that start took, for
// a request that ends before the install.
func (m *Manager) abort(err error) (Status, error) {
	m.fail(err)
	m.end()
	return Status{}, err
}

// receive streams the bundle to disk, verifies it and hands it to the
// installer. m.running is held and released here.
func (m *Manager) receive(ctx context.Context, r io.Reader, want []byte, at time.Time) (Status, error) {
	if m.Status().Phase != PhaseDownloading {
		m.set(PhaseDownloading, "")
	}
	tmp := filepath.Join(m.o.Dir, bundleTemp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return m.abort(fmt.Errorf("create bundle file: %w", err))
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
		return m.abort(fmt.Errorf("receive bundle: %w", err))
	}
	if n > m.o.MaxBundleBytes {
		return m.abort(&Refused{Code: "bundle_refused", Reason: fmt.Sprintf("the bundle is over the limit of %d bytes", m.o.MaxBundleBytes)})
	}
	if n == 0 {
		return m.abort(&Refused{Code: "bundle_refused", Reason: "the bundle is empty"})
	}
	m.set(PhaseVerifying, "")
	if got := h.Sum(nil); want != nil && !bytesEqual(got, want) {
		return m.abort(&Refused{Code: "sha256_mismatch", Reason: fmt.Sprintf("sha256 mismatch: the bundle hashes to %x, the request promised %x", got, want)})
	}
	bundle := filepath.Join(m.o.Dir, bundleFile)
	if err := os.Rename(tmp, bundle); err != nil {
		return m.abort(fmt.Errorf("keep bundle: %w", err))
	}
	info, err := m.o.Runner.Info(ctx, bundle)
	if err != nil {
		return m.abort(&Refused{Code: "bundle_refused", Reason: "bundle refused: " + err.Error()})
	}
	sys, err := m.raucStatus(ctx)
	if err != nil {
		return m.abort(fmt.Errorf("read slots: %w", err))
	}
	if info.Compatible != sys.Compatible {
		return m.abort(&Refused{Code: "bundle_refused", Reason: fmt.Sprintf("bundle refused: it is for %q, this box is %q", info.Compatible, sys.Compatible)})
	}
	target := ""
	for _, s := range sys.Slots {
		if !s.Booted {
			target = s.Bootname
			break
		}
	}
	if target == "" {
		return m.abort(fmt.Errorf("no inactive slot to install into (booted %q)", sys.Booted))
	}
	m.mu.Lock()
	m.st.TargetSlot, m.st.TargetVersion = target, info.Version
	m.st.FromVersion, m.st.FromSlot = m.o.Version, sys.Booted
	m.st.RebootAt, m.st.BootID, m.st.RebootRequested = nil, "", false
	m.setLocked(PhaseInstalling, "")
	base := m.baseCtx
	m.mu.Unlock()
	m.event(fmt.Sprintf("update: installing %s into slot %s", info.Version, target))
	go m.install(base, bundle, at, sys)
	return m.Status(), nil
}

// keepFallback marks the booted slot good before an install if RAUC does
// not call it good yet and mohd plays: it is the slot the box falls back
// to if the new one fails. GRUB counts a try at every boot, and mohd marks
// the booted slot good only after update-healthy of audio, so a box
// updated soon after a power cut would otherwise fall back to a slot with
// one of its three boot tries used and shown as not good.
func (m *Manager) keepFallback(ctx context.Context, sys RaucStatus) {
	i := slices.IndexFunc(sys.Slots, func(s Slot) bool { return s.Booted })
	if i < 0 || sys.Slots[i].Good {
		return
	}
	slot := sys.Slots[i].Bootname
	if !m.o.Healthy() {
		m.log.Warn("the booted slot is not marked good and mohd is not healthy: installing anyway; the fallback keeps the boot tries it has left", "slot", slot)
		return
	}
	if err := m.o.Runner.Mark(ctx, true); err != nil {
		m.log.Warn("mark the booted slot good before the install", "slot", slot, "err", err)
		return
	}
	m.log.Info("marked the booted slot good: the fallback of this update", "slot", slot)
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// install runs RAUC and leaves the box waiting for its reboot.
func (m *Manager) install(ctx context.Context, bundle string, at time.Time, sys RaucStatus) {
	m.keepFallback(ctx, sys)
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
