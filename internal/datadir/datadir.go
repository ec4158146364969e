// Package datadir guards a moh data dir that several processes share. One
// `mohd run` owns it at a time (Acquire): a second daemon on the same dir
// stops before it touches anything, because two daemons would sweep each
// other's temp files and overwrite each other's library index. The
// short-lived commands that write beside the daemon (`mohd token`, `mohd
// passwd`) instead take a lock per file for each read-modify-write
// (WithFileLock), the same lock the daemon takes for the same file.
//
// Lock files appear already owned by the data dir's owner, even when root
// creates them through sudo, so a lock made by an admin never locks the
// service user out.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/mohproject/moh/internal/atomicfile"
)

// LockFile is the name, inside the data dir, of the file `mohd run` holds
// an exclusive flock on for as long as it runs. It holds that process's
// pid, for the message a second daemon prints.
const LockFile = ".mohd.lock"

// ErrHeld means another process holds the data dir. The error returned
// is a *HeldError; errors.Is(err, ErrHeld) matches it.
var ErrHeld = errors.New("data dir in use")

// HeldError says which data dir is taken and, when known, by which pid.
type HeldError struct {
	Dir string
	PID int // 0 when the holder's pid could not be read
}

func (e *HeldError) Error() string {
	who := "another mohd"
	if e.PID > 0 {
		who = fmt.Sprintf("another mohd (pid %d)", e.PID)
	}
	return fmt.Sprintf("data dir %s is in use by %s: stop it first, or give this one its own --data", e.Dir, who)
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Lock is a held data dir.
type Lock struct {
	f *os.File
}

// Acquire takes dir for this process, or fails at once with a *HeldError
// if another process has it. It creates nothing but the lock file, and
// writes only to the lock file, after it holds the lock. The lock lasts
// until Release or the process's death (the kernel drops it then, so a
// crash never leaves a stale lock). The file is opened close-on-exec:
// child processes (mpd) do not inherit it.
func Acquire(dir string) (*Lock, error) {
	f, err := openLockFile(dir, LockFile)
	if err != nil {
		return nil, err
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &HeldError{Dir: dir, PID: readPID(f)}
		}
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	// The pid is only for a second daemon's message: failing to write it
	// must not stop this one.
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release gives the data dir up.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0) // a pid that no longer holds it would mislead
	err := l.f.Close()
	l.f = nil
	return err
}

func readPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// WithFileLock runs fn while holding an exclusive flock on the lock file
// name in dir, waiting for any other holder (the daemon or another CLI
// process) to finish first.
func WithFileLock(dir, name string, fn func() error) error {
	f, err := openLockFile(dir, name)
	if err != nil {
		return err
	}
	defer f.Close() // closing drops the lock
	if err := flock(f, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return fn()
}

// openLockFile opens dir/name for locking, creating it if need be. A new
// lock file is made as a temp file, given dir's owner and mode 0600, and
// only then hard-linked into place, so no process ever sees a lock file
// it may not open. As root it also repairs a lock file an older moh left
// owned by root.
func openLockFile(dir, name string) (*os.File, error) {
	path := filepath.Join(dir, name)
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
		if err == nil {
			if err := atomicfile.MatchOwner(f, dir); err != nil {
				f.Close()
				return nil, err
			}
			return f, nil
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("open lock file: %w (left by root? `sudo chown --reference=%s %s` repairs it)", err, dir, path)
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open lock file: %w", err)
		}
		f, err = createLockFile(dir, path)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		// Someone else created it first: open theirs.
	}
	return nil, fmt.Errorf("open lock file %s: it keeps appearing and vanishing", path)
}

// createLockFile makes path with dir's owner from its first instant. It
// returns an error matching os.ErrExist if path appeared meanwhile.
func createLockFile(dir, path string) (*os.File, error) {
	t, err := atomicfile.CreateTemp(dir, filepath.Base(path)+"-*")
	if err != nil {
		return nil, fmt.Errorf("create lock file: %w", err)
	}
	defer t.Close()
	tmp := t.Name()
	if err := t.Chmod(0o600); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("create lock file: %w", err)
	}
	err = os.Link(tmp, path)
	os.Remove(tmp) // on success the lock file keeps its other name
	if err != nil {
		var le *os.LinkError
		if errors.As(err, &le) && errors.Is(le.Err, syscall.EEXIST) {
			return nil, os.ErrExist
		}
		return nil, fmt.Errorf("create lock file: %w", err)
	}
	// Opened afresh by its real name: the temp file's descriptor carries
	// CreateTemp's lock, which the caller must not inherit unasked.
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	return f, nil
}

// flock retries on EINTR: a signal arriving while it waits is no failure.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
