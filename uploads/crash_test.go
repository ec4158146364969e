package uploads

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash test re-runs this test binary as a child that ingests and
// deletes tracks, and kills it with SIGKILL at random moments.
const (
	crashEnvData   = "MOH_UPLOADS_CRASH_DATA"
	crashEnvInputs = "MOH_UPLOADS_CRASH_INPUTS"
)

func TestMain(m *testing.M) {
	if data := os.Getenv(crashEnvData); data != "" {
		os.Exit(crashChild(data, os.Getenv(crashEnvInputs)))
	}
	os.Exit(m.Run())
}

func crashChild(data, inputs string) int {
	l, err := Open(Options{DataDir: data})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	files, _ := filepath.Glob(filepath.Join(inputs, "*.wav"))
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return 1
		}
		_, _, err = l.Ingest(context.Background(), filepath.Base(p), f, nil)
		f.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if ts := l.Tracks(); len(ts) > 3 {
			l.Delete(ts[0].ID)
		}
	}
	return 0
}

func TestKillDuringIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns 50 ingest processes")
	}
	data := t.TempDir()
	inputs := t.TempDir()
	for i := range 6 {
		distinctWAV(t, inputs, i)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(7, 7))
	const runs = 50
	var killed, finished int
	start := time.Now()
	for i := 0; i < runs; i++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnvData+"="+data, crashEnvInputs+"="+inputs)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("run %d: child failed: %v", i, err)
			}
			finished++
		case <-time.After(time.Duration(rnd.IntN(700)) * time.Millisecond):
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			killed++
		}
		waitToolsGone(t, data)
		checkStoreConsistent(t, data)
	}
	t.Logf("%d runs: %d killed mid-way, %d finished; %v", runs, killed, finished, time.Since(start).Round(time.Millisecond))
	if killed < runs/3 {
		t.Errorf("only %d of %d runs were killed: the test does not exercise crashes", killed, runs)
	}
}

// waitToolsGone waits until no decoder or encoder started by a killed
// child still works on data (they get SIGKILL when their parent dies, but
// asynchronously).
func waitToolsGone(t *testing.T, data string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		busy := ""
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), data) {
				busy = strings.ReplaceAll(string(b), "\x00", " ")
			}
		}
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tool still running after its parent was killed: %s", busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkStoreConsistent reopens the store as mohd would after a restart and
// checks that every listed track is whole and nothing else is left.
func checkStoreConsistent(t *testing.T, data string) {
	t.Helper()
	l, err := Open(Options{DataDir: data})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	want := map[string]bool{l.index: true}
	for _, tr := range l.Tracks() {
		b, err := os.ReadFile(tr.Path)
		if err != nil {
			t.Fatalf("listed track %s has no rendition: %v", tr.ID, err)
		}
		if h, ok := parseMPEG(b); !ok || h.version != 1 || h.rate != 44100 {
			t.Fatalf("rendition of %s is not a whole MP3", tr.ID)
		}
		if _, _, isTag := parseXing(b, mustHeader(b)); !isTag {
			t.Fatalf("rendition of %s lacks its LAME tag", tr.ID)
		}
		o, err := os.Stat(tr.OriginalPath)
		if err != nil || o.Size() != tr.Size {
			t.Fatalf("original of %s: %v", tr.ID, err)
		}
		want[tr.Path], want[tr.OriginalPath] = true, true
	}
	filepath.WalkDir(l.store, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !want[p] {
			t.Fatalf("left behind after reopening: %s", p)
		}
		return nil
	})
}

func mustHeader(b []byte) mpegHeader {
	h, _ := parseMPEG(b)
	return h
}
