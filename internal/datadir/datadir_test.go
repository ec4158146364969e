package datadir

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// childLock keeps the helper's lock reachable, so no finaliser closes it.
var childLock *Lock

// TestMain doubles as the helper process that holds a data dir, so the
// lock is tried across real processes, as two daemons would.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DATADIR_TEST_HOLD"); dir != "" {
		var err error
		if childLock, err = Acquire(dir); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("held")
		for { // held until killed
			time.Sleep(time.Hour)
		}
	}
	os.Exit(m.Run())
}

func holdInChild(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DATADIR_TEST_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "held" {
		t.Fatalf("helper: %q", line)
	}
	return cmd
}

// TestSecondHolderRefused: while one process holds the data dir, another
// is refused at once with a message naming the dir and the holder's pid,
// and changes nothing; once the holder dies (kill -9, no clean-up) the
// dir can be taken again.
func TestSecondHolderRefused(t *testing.T) {
	dir := t.TempDir()
	child := holdInChild(t, dir)
	before, err := os.ReadFile(filepath.Join(dir, LockFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(before)) != strconv.Itoa(child.Process.Pid) {
		t.Fatalf("lock file holds %q, want the holder's pid %d", before, child.Process.Pid)
	}
	start := time.Now()
	l, err := Acquire(dir)
	if err == nil {
		l.Release()
		t.Fatal("a second process took a held data dir")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("refusal took %v: it must not wait", took)
	}
	var he *HeldError
	if !errors.As(err, &he) || !errors.Is(err, ErrHeld) || he.PID != child.Process.Pid || he.Dir != dir {
		t.Fatalf("err = %#v (%v), want a HeldError for %s pid %d", err, err, dir, child.Process.Pid)
	}
	for _, want := range []string{dir, fmt.Sprintf("pid %d", child.Process.Pid)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not name %q", err, want)
		}
	}
	after, _ := os.ReadFile(filepath.Join(dir, LockFile))
	if string(after) != string(before) {
		t.Errorf("refused attempt changed the lock file: %q → %q", before, after)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("refused attempt left files: %v", entries)
	}

	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	l, err = Acquire(dir)
	if err != nil {
		t.Fatalf("data dir not free after its holder died: %v", err)
	}
	defer l.Release()
	if b, _ := os.ReadFile(filepath.Join(dir, LockFile)); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, want our pid", b)
	}
}

// TestAcquireInProcess: two opens of the lock in one process conflict
// too, and Release frees it.
func TestAcquireInProcess(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir); !errors.Is(err, ErrHeld) {
		t.Fatalf("second Acquire: %v, want ErrHeld", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l, err = Acquire(dir)
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	l.Release()
}

// TestFileLockSerialises: read-modify-writes under WithFileLock from many
// goroutines lose no update.
func TestFileLockSerialises(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(dir, "n")
	os.WriteFile(counter, []byte("0"), 0o600)
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := WithFileLock(dir, ".n.lock", func() error {
				b, err := os.ReadFile(counter)
				if err != nil {
					return err
				}
				n, _ := strconv.Atoi(string(b))
				time.Sleep(time.Millisecond)
				return os.WriteFile(counter, []byte(strconv.Itoa(n+1)), 0o600)
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if b, _ := os.ReadFile(counter); string(b) != "40" {
		t.Fatalf("counter = %s after 40 locked increments", b)
	}
}

// TestRootLockFilesKeepDirOwner: lock files root creates in a directory
// the service user owns are that user's from the start, and a root-owned
// one an older moh left is given back.
func TestRootLockFilesKeepDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	const uid, gid = 65534, 65534
	dir := t.TempDir()
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := WithFileLock(dir, ".tokens.lock", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, ".password.lock")
	if err := os.WriteFile(old, nil, 0o600); err != nil { // root's, as before the fix
		t.Fatal(err)
	}
	if err := WithFileLock(dir, ".password.lock", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("data dir holds %v, want the three lock files only", entries)
	}
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %d:%d %v, want %d:%d -rw-------", e.Name(), st.Uid, st.Gid, fi.Mode().Perm(), uid, gid)
		}
	}
}
