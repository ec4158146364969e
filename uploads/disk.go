package uploads

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DiskStatus is the state of the file system holding the library.
type DiskStatus struct {
	FreeBytes  uint64 `json:"free_bytes"`
	TotalBytes uint64 `json:"total_bytes"`
	// Warning is set while free space is below twice the refusal margin,
	// so the admin hears about it before uploads start failing.
	Warning bool   `json:"warning"`
	Message string `json:"message,omitempty"`
}

func statfs(path string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	// Bavail, not Bfree: blocks reserved for root are not ours to use.
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// diskCache holds the last reading of Disk. One caller refreshes it while
// the others use the previous value instead of queueing behind a slow
// statfs.
type diskCache struct {
	mu   sync.Mutex // held by the one caller reading the disk
	snap atomic.Pointer[diskSnapshot]
}

type diskSnapshot struct {
	at time.Time
	d  DiskStatus
}

// invalidate makes the next Disk call read the disk again.
func (c *diskCache) invalidate() { c.snap.Store(nil) }

// Disk reports free space and whether it is getting short, from a reading
// at most Options.DiskCacheTTL old.
func (l *Library) Disk() DiskStatus {
	ttl := l.opts.DiskCacheTTL
	if ttl < 0 {
		return l.readDisk()
	}
	now := l.opts.Now()
	snap := l.disk.snap.Load()
	if snap != nil && now.Sub(snap.at) <= ttl && !now.Before(snap.at) {
		return snap.d
	}
	if !l.disk.mu.TryLock() {
		if snap != nil {
			return snap.d // someone is reading it now
		}
		l.disk.mu.Lock() // the very first reading: wait for it
		defer l.disk.mu.Unlock()
		if s := l.disk.snap.Load(); s != nil {
			return s.d
		}
	} else {
		defer l.disk.mu.Unlock()
	}
	d := l.readDisk()
	l.disk.snap.Store(&diskSnapshot{at: now, d: d})
	return d
}

func (l *Library) readDisk() DiskStatus {
	free, total, err := l.opts.Statfs(l.store)
	if err != nil {
		return DiskStatus{Warning: true, Message: "cannot read free disk space: " + err.Error()}
	}
	d := DiskStatus{FreeBytes: free, TotalBytes: total}
	if l.opts.MinFreeBytes < 0 {
		return d
	}
	margin := uint64(l.opts.MinFreeBytes)
	switch {
	case free < margin:
		d.Warning = true
		d.Message = fmt.Sprintf("disk full: %s free, uploads are refused below %s", mib(free), mib(margin))
	case free < 2*margin:
		d.Warning = true
		d.Message = fmt.Sprintf("disk nearly full: %s free, uploads will be refused below %s", mib(free), mib(margin))
	}
	return d
}

// checkDisk refuses when storing need more bytes would leave less than the
// margin free.
func (l *Library) checkDisk(need int64) error {
	if l.opts.MinFreeBytes < 0 {
		return nil
	}
	free, _, err := l.opts.Statfs(l.store)
	if err != nil {
		return fmt.Errorf("check free disk space: %w", err)
	}
	margin := uint64(l.opts.MinFreeBytes)
	if need <= 0 && free < margin {
		return refuse(CodeDiskFull, fmt.Sprintf("not enough disk space: %s free and %s must stay free", mib(free), mib(margin)))
	}
	if free < margin+uint64(max(need, 0)) {
		return refuse(CodeDiskFull, fmt.Sprintf("not enough disk space: %s free, %s needed for this track and %s must stay free", mib(free), mib(uint64(max(need, 0))), mib(margin)))
	}
	return nil
}

// fullDiskSlack: the tools that write renditions and previews (lame,
// sox) report a full disk only in words on stderr, which moh does not
// parse. Free space this low right after one of them failed says the same
// in numbers.
const fullDiskSlack = 1 << 20

// diskFullCause returns a disk-full refusal in place of err, a tool's
// failure to write into dir, when dir's file system has next to no space
// left: the admin must hear "disk full", not "internal error".
func (l *Library) diskFullCause(dir string, err error) error {
	free, _, serr := l.opts.Statfs(dir)
	if serr != nil || free >= fullDiskSlack {
		return err
	}
	return fmt.Errorf("%w (%v)", refuse(CodeDiskFull, fmt.Sprintf("not enough disk space: %s free; delete tracks to make room", mib(free))), err)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
