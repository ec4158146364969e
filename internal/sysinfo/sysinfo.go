// Package sysinfo reads what predicts a box's failure before it happens:
// whether its clock is synchronised (a drifting clock plays the schedule
// at the wrong hour, then fails certificate checks), when its
// certificates expire (the fleet link and the HTTPS page die that day),
// and how many bytes its data partition has had written since boot (the
// flash-wear budget; the seed appliance died of its flash card). The
// status document carries it (status.Doc.System) so the fleet exporter
// can alert on it, and /metrics serves it.
package sysinfo

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mohproject/moh/internal/sysupdate"
)

// Cert is one certificate's expiry, or why it could not be read.
type Cert struct {
	Name     string    `json:"name"`
	NotAfter time.Time `json:"not_after,omitzero"`
	Error    string    `json:"error,omitempty"`
}

// System is the status document's "system" object. Its JSON names are
// part of the status contract (add, never rename); a field the box could
// not read is absent rather than a guess.
type System struct {
	// ClockSynced is the kernel's verdict (adjtimex): true once NTP (or
	// any time daemon) disciplines the clock within 16 s.
	ClockSynced *bool `json:"clock_synced,omitempty"`
	// Certs lists the box's certificates by role: "fleet", "https".
	Certs []Cert `json:"certs,omitempty"`
	// DataWrittenBytes is what the kernel wrote to the block device
	// holding the data dir since boot; DataDevice names it (e.g. "254:0").
	DataWrittenBytes *uint64 `json:"data_written_bytes,omitempty"`
	DataDevice       string  `json:"data_device,omitempty"`
	// DiskFreeTrend is how fast the library's free space changed over
	// the last hour, in bytes per hour (negative: filling up), from the
	// readings trend.go keeps in RAM; absent until they span
	// Options.TrendMinSpan.
	DiskFreeTrend *float64 `json:"disk_free_trend_bytes_per_hour,omitempty"`
	// ALSAUnderruns counts the underruns aplay reported since mohd
	// started; absent when no output is a sound card.
	ALSAUnderruns *uint64 `json:"alsa_underruns,omitempty"`
	// Update is the system update's phase, progress and reason; mohd
	// sets it after Read (the reporter knows nothing of RAUC).
	Update *sysupdate.Status `json:"update,omitempty"`
}

// Options configure a Reporter. Paths are injectable so tests point them
// at temp dirs.
type Options struct {
	// DataDir is the directory whose block device is watched.
	DataDir string
	// Certs maps a role ("fleet", "https") to a PEM certificate file.
	Certs map[string]string
	// CertFiles, if set, replaces Certs and is asked at every read: a
	// certificate rotation switches to a new file (or rewrites one) while
	// mohd runs, and its expiry must be the new one's at once.
	CertFiles func() map[string]string
	// SysRoot is where sysfs is mounted (default /sys).
	SysRoot string
	// Adjtimex reads the kernel clock state (default: the adjtimex(2)
	// system call with no change).
	Adjtimex func() (synced bool, err error)
	// CertEvery is how often certificate files are read again (default
	// 10 min: a rotated certificate shows within that, and a status
	// read every second costs no disk reads).
	CertEvery time.Duration
	Now       func() time.Time
	// DiskFree reads the library's free bytes for the trend (nil: no
	// trend). Run samples it every TrendEvery (default 1 min); the trend
	// is reported once the samples span TrendMinSpan (default 10 min).
	DiskFree                 func() (uint64, bool)
	TrendEvery, TrendMinSpan time.Duration
	// Underruns reads the ALSA underrun count (nil: no sound card).
	Underruns func() uint64
}

// Reporter reads System; safe for concurrent use.
type Reporter struct {
	o Options

	mu         sync.Mutex
	certKey    string            // the files certs was read from
	certStamps map[string]string // their mtime/size then
	certs      []Cert
	certRead   time.Time

	trend trend
}

// New returns a Reporter.
func New(o Options) *Reporter {
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.Adjtimex == nil {
		o.Adjtimex = kernelClockSynced
	}
	if o.CertEvery <= 0 {
		o.CertEvery = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TrendEvery <= 0 {
		o.TrendEvery = time.Minute
	}
	if o.TrendMinSpan <= 0 {
		o.TrendMinSpan = 10 * time.Minute
	}
	return &Reporter{o: o}
}

// Read returns the current System. It never fails: what cannot be read
// is left out (or, for a certificate, carries its error).
func (r *Reporter) Read() *System {
	s := &System{}
	if ok, err := r.o.Adjtimex(); err == nil {
		s.ClockSynced = &ok
	}
	s.Certs = r.readCerts()
	if r.o.DataDir != "" {
		if dev, n, err := WrittenBytes(r.o.SysRoot, r.o.DataDir); err == nil {
			s.DataWrittenBytes, s.DataDevice = &n, dev
		}
	}
	if v, ok := r.trend.perHour(r.o.Now(), r.o.TrendMinSpan); ok {
		s.DiskFreeTrend = &v
	}
	if r.o.Underruns != nil {
		n := r.o.Underruns()
		s.ALSAUnderruns = &n
	}
	return s
}

func (r *Reporter) readCerts() []Cert {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.o.Now()
	files := r.o.Certs
	if r.o.CertFiles != nil {
		files = r.o.CertFiles()
	}
	names := make([]string, 0, len(files))
	for n, p := range files {
		if p != "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	// What was read stays good for CertEvery while the same files are
	// named and none was replaced (a rotation renames a new one over the
	// old); a file that vanished is noticed at CertEvery, like an expiry.
	var key strings.Builder
	stamps := make(map[string]string, len(names))
	for _, n := range names {
		key.WriteString(n + "=" + files[n] + "\x00")
		if st, err := os.Stat(files[n]); err == nil {
			stamps[files[n]] = fmt.Sprintf("%d/%d", st.ModTime().UnixNano(), st.Size())
		}
	}
	if r.certs != nil && key.String() == r.certKey && now.Sub(r.certRead) < r.o.CertEvery && !replaced(r.certStamps, stamps) {
		return slices.Clone(r.certs)
	}
	r.certKey, r.certStamps = key.String(), stamps
	certs := make([]Cert, 0, len(names))
	failed := false
	for _, n := range names {
		c := Cert{Name: n}
		if t, err := CertExpiry(files[n]); err != nil {
			c.Error = err.Error()
			failed = true
		} else {
			c.NotAfter = t
		}
		certs = append(certs, c)
	}
	r.certs, r.certRead = certs, now
	if failed {
		// A certificate that is not there yet (made at start, or being
		// rotated) is looked for again soon, not in CertEvery.
		r.certRead = now.Add(certRetry - r.o.CertEvery)
	}
	return slices.Clone(certs)
}

// replaced reports whether a file present at both readings changed.
func replaced(before, now map[string]string) bool {
	for path, s := range now {
		if b, ok := before[path]; ok && b != s {
			return true
		}
	}
	return false
}

// certRetry is how soon an unreadable certificate is read again.
const certRetry = 10 * time.Second

// staUnsync is adjtimex's "clock not synchronised" status bit, and
// maxSyncError the largest error estimate (µs) still counted as
// synchronised: what systemd's NTPSynchronized reports, read from the
// kernel without asking D-Bus.
const (
	staUnsync    = 0x0040
	maxSyncError = 16_000_000
)

func kernelClockSynced() (bool, error) {
	var tx syscall.Timex
	if _, err := syscall.Adjtimex(&tx); err != nil {
		return false, fmt.Errorf("adjtimex: %w", err)
	}
	return tx.Status&staUnsync == 0 && tx.Maxerror < maxSyncError, nil
}

// CertExpiry returns the NotAfter of the first certificate in a PEM file
// (the leaf, in a chain file).
func CertExpiry(path string) (time.Time, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("read certificate: %w", err)
	}
	for {
		var b *pem.Block
		b, raw = pem.Decode(raw)
		if b == nil {
			return time.Time{}, fmt.Errorf("%s: no PEM certificate", path)
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: %w", path, err)
		}
		return c.NotAfter, nil
	}
}

// errNoBlockDevice: the path lives on tmpfs, overlay or another file
// system without a block device of its own.
var errNoBlockDevice = errors.New("no block device")

// WrittenBytes returns the block device holding path ("major:minor") and
// the bytes written to it since boot, from sysfs's stat file (its
// seventh field counts 512-byte sectors whatever the device's sector
// size). A partition has a stat file of its own, so this is the data
// partition, not the whole card.
func WrittenBytes(sysRoot, path string) (string, uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return "", 0, fmt.Errorf("stat %s: %w", path, err)
	}
	major := (st.Dev>>8)&0xfff | (st.Dev>>32)&^0xfff
	minor := st.Dev&0xff | (st.Dev>>12)&^0xff
	if major == 0 {
		return "", 0, errNoBlockDevice
	}
	dev := strconv.FormatUint(major, 10) + ":" + strconv.FormatUint(minor, 10)
	raw, err := os.ReadFile(filepath.Join(sysRoot, "dev", "block", dev, "stat"))
	if err != nil {
		return dev, 0, fmt.Errorf("block stats of %s: %w", dev, err)
	}
	f := strings.Fields(string(raw))
	if len(f) < 7 {
		return dev, 0, fmt.Errorf("block stats of %s: %d fields", dev, len(f))
	}
	sectors, err := strconv.ParseUint(f[6], 10, 64)
	if err != nil {
		return dev, 0, fmt.Errorf("block stats of %s: %w", dev, err)
	}
	return dev, sectors * 512, nil
}
