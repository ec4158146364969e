package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestSweepKeepsLiveWrite: a sweep that runs while a write is half done
// (another process's `mohd token create` beside a starting daemon) keeps
// that write's temp file, and removes only an abandoned one.
func TestSweepKeepsLiveWrite(t *testing.T) {
	dir := t.TempDir()
	abandoned := filepath.Join(dir, TempPrefix+"tokens.json-123")
	if err := os.WriteFile(abandoned, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	inFill := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Write(filepath.Join(dir, "tokens.json"), 0o600, func(w io.Writer) error {
			close(inFill)
			<-release
			_, err := w.Write([]byte("new\n"))
			return err
		})
	}()
	<-inFill
	n, err := CleanTemps(dir)
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("write beside a sweep failed: %v", err)
	}
	if n != 1 {
		t.Errorf("sweep removed %d files, want 1 (the abandoned one)", n)
	}
	if _, err := os.Stat(abandoned); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("abandoned temp file still there: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "tokens.json")); string(b) != "new\n" {
		t.Errorf("tokens.json = %q", b)
	}
	if left := temps(t, dir); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestWritesRaceSweeps runs writes while sweeps run back to back, so some
// sweep lands between a temp file's creation and its writer's lock: every
// write must still succeed with its own content.
func TestWritesRaceSweeps(t *testing.T) {
	dir := t.TempDir()
	stop := make(chan struct{})
	var sweeps sync.WaitGroup
	for range 2 {
		sweeps.Add(1)
		go func() {
			defer sweeps.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := CleanTemps(dir); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var writers sync.WaitGroup
	errs := make(chan error, 8*100)
	for w := range 8 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 100 {
				path := filepath.Join(dir, fmt.Sprintf("f%d", w))
				want := fmt.Sprintf("%d-%d", w, i)
				if err := WriteFile(path, []byte(want), 0o600); err != nil {
					errs <- err
					continue
				}
				if got, _ := os.ReadFile(path); string(got) != want {
					errs <- fmt.Errorf("%s = %q, want %q", path, got, want)
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	sweeps.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of 800 writes failed beside sweeps", n)
	}
}

// TestSweepSkipsWhatItCannotJudge: a FIFO must not hang the sweep, and a
// non-regular entry is kept.
func TestSweepSkipsWhatItCannotJudge(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, TempPrefix+"fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, TempPrefix+"dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	n, err := CleanTemps(dir)
	if err != nil || n != 0 {
		t.Fatalf("CleanTemps = %d, %v; want 0, nil", n, err)
	}
	if len(temps(t, dir)) != 2 {
		t.Fatal("sweep removed a FIFO or a directory")
	}
}

// TestRootWritesKeepDirOwner: root writing into a directory someone else
// owns (sudo mohd token create in the service's data dir) leaves a file
// that user owns, with the mode asked for.
func TestRootWritesKeepDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	const uid, gid = 65534, 65534
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tokens.json")
	for range 2 { // a new file, then a replaced one
		if err := WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid || fi.Mode().Perm() != 0o600 {
			t.Fatalf("file is %d:%d %v, want %d:%d -rw-------", st.Uid, st.Gid, fi.Mode().Perm(), uid, gid)
		}
	}
	// In a root-owned directory nothing is given away.
	own := filepath.Join(t.TempDir(), "x")
	if err := WriteFile(own, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(own)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
		t.Fatalf("file in root's dir owned by %d", st.Uid)
	}
}

func temps(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}
