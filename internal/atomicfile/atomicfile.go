// Package atomicfile writes files so that a power cut at any instant leaves
// either the old content or the new one, never a mix: temp file in the same
// directory, fsync, rename, fsync the directory.
//
// Several processes write into the same data dir (the daemon, and `mohd
// token` or `mohd passwd` beside it), so a temp file is locked (flock) by
// its writer for as long as the writer has it open, and the start-up sweep
// removes only temp files no process holds: a crash's leftovers, never a
// live write.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// TempPrefix starts the name of every temp file this package creates, so a
// start-up sweep can remove what a power cut left behind.
const TempPrefix = ".moh-tmp-"

// WriteFile atomically replaces path with data.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write atomically replaces path with what fill writes. The new file gets
// perm and, when root writes it, the directory's owner and group (see
// MatchOwner), before it is renamed into place: there is no moment at which
// the service user finds a file it cannot read.
func Write(path string, perm os.FileMode, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := CreateTemp(dir, filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("create temp for %s: %w", path, err)
	}
	tmp := f.Name()
	// The temp file stays open, and so locked against the sweep, until it
	// has been renamed into place.
	defer f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err = fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return Commit(tmp, path)
}

// CreateTemp creates a temp file in dir (pattern as for os.CreateTemp,
// after TempPrefix) and holds an exclusive flock on it until it is closed,
// so that CleanTemps in any process leaves it alone. Close it only after
// Commit. When root creates it, it already has dir's owner (MatchOwner).
func CreateTemp(dir, pattern string) (*os.File, error) {
	// A sweep may lock and remove the file between its creation and our
	// lock; the name then no longer leads to our file and we take another.
	// Each retry takes a new sweep pass (a pass removes only names it
	// listed, and the new name was not among them). mohd sweeps once, at
	// start, so one retry is the most a writer needs; the bound only stops
	// a runaway loop.
	for range 100 {
		f, err := os.CreateTemp(dir, TempPrefix+pattern)
		if err != nil {
			return nil, err
		}
		if err := flock(f, syscall.LOCK_EX); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("lock temp file: %w", err)
		}
		if same, _ := stillNamed(f, f.Name()); !same {
			f.Close()
			continue
		}
		if err := MatchOwner(f, dir); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		return f, nil
	}
	return nil, fmt.Errorf("create temp file in %s: removed by a sweep 100 times in a row", dir)
}

// Commit renames an already fsynced temp file into place and fsyncs the
// directory, for callers that stream large files themselves. A file from
// CreateTemp must stay open until Commit returns.
func Commit(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory so a rename or unlink in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// MatchOwner gives f the owner and group of dir when this process is root
// and they differ. An admin runs `sudo mohd token create` in a data dir the
// service user owns: without this the new file (or lock file) would be
// root's, and the service could neither read it nor lock it. Other users
// cannot give files away, and need not: their files are theirs.
func MatchOwner(f *os.File, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	di, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("owner of %s: %w", dir, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("owner of %s: %w", f.Name(), err)
	}
	ds, ok1 := di.Sys().(*syscall.Stat_t)
	fs, ok2 := fi.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 || (ds.Uid == fs.Uid && ds.Gid == fs.Gid) {
		return nil
	}
	if err := f.Chown(int(ds.Uid), int(ds.Gid)); err != nil {
		return fmt.Errorf("give %s to the owner of %s: %w", f.Name(), dir, err)
	}
	return nil
}

// CleanTemps removes temp files left in dir by an interrupted write and
// returns how many it removed. A temp file whose writer still holds it
// (CreateTemp's lock) is live and kept, whichever process writes it.
//
// Temp files made otherwise (os.CreateTemp with TempPrefix, for a stream
// that external tools reopen by name) carry no lock: only the process that
// holds the data dir (internal/datadir) creates those, so only it may sweep,
// and only before it starts such writers of its own.
func CleanTemps(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return 0, nil
		}
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), TempPrefix) && removeIfAbandoned(filepath.Join(dir, e.Name())) {
			n++
		}
	}
	return n, nil
}

// removeIfAbandoned removes path if no process holds a lock on it. It
// keeps anything it cannot decide about (cannot open, not a regular file):
// a leftover costs a few bytes, a removed live temp file costs a write.
func removeIfAbandoned(path string) bool {
	// O_NONBLOCK: a FIFO by that name must not hang the sweep.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false // a live writer holds it
	}
	// The name might have moved on meanwhile (the writer renamed it into
	// place before we locked): remove only the file we hold.
	if same, _ := stillNamed(f, path); !same {
		return false
	}
	// Removed while we hold the lock: a writer that created it but had not
	// locked it yet finds the name gone once it gets the lock, and retries.
	return os.Remove(path) == nil
}

// stillNamed reports whether path still leads to the open file f.
func stillNamed(f *os.File, path string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Lstat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
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
