package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/internal/testkit"
	"github.com/mohproject/moh/player"
)

// readState reads what mohd saved in the data dir.
func readState(t *testing.T, data string) settingsDoc {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, stateFile))
	if err != nil {
		t.Fatalf("read state: %v", err)
	}
	var st settingsDoc
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file damaged: %v: %q", err, b)
	}
	return st
}

func liveSettings(t *testing.T, c *apiClient) settingsDoc {
	t.Helper()
	s, err := c.status()
	if err != nil {
		t.Fatal(err)
	}
	return settingsDoc{Volume: s.Volume, Playing: s.Wanted == "playing"}
}

// TestConcurrentChangesSurviveKill9 sends 300 concurrent volume / play /
// stop requests, then kills mohd with SIGKILL the moment the last one is
// answered. What the live player says, what state.json holds and what a
// restart comes back to must be one and the same, every round: a save that
// finishes late must never overwrite a newer acknowledged one.
func TestConcurrentChangesSurviveKill9(t *testing.T) {
	data := t.TempDir()
	token := createToken(t, data, "operate")
	const rounds, changes, workers = 5, 300, 24
	rng := rand.New(rand.NewPCG(7, 11))
	var mismatches []string
	for round := 0; round < rounds; round++ {
		addr := testkit.FreeAddr(t)
		d := startDaemon(t, data, addr)
		// 300 requests at once over at most 16 connections: mohd caps one
		// client address at 32 (a flood defence), as a real client would
		// pool them.
		c := &apiClient{base: "http://" + addr, token: token, hc: &http.Client{Timeout: 10 * time.Second,
			Transport: &http.Transport{MaxConnsPerHost: 16, MaxIdleConnsPerHost: 16}}}
		waitFlowing(t, c, d, time.Now())

		jobs := make(chan int, changes)
		for i := 0; i < changes; i++ {
			jobs <- rng.IntN(1000)
		}
		close(jobs)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failed []string
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range jobs {
					var code int
					var err error
					switch {
					case j < 150:
						code, err = c.do("POST", "/api/v1/player/stop", nil, nil)
					case j < 300:
						code, err = c.do("POST", "/api/v1/player/play", nil, nil)
					default:
						code, err = c.do("PUT", "/api/v1/volume", map[string]int{"volume": j % 101}, nil)
					}
					if err != nil || code != http.StatusOK {
						mu.Lock()
						failed = append(failed, fmt.Sprintf("HTTP %d %v", code, err))
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		if len(failed) > 0 {
			t.Fatalf("round %d: %d of %d changes not acknowledged, e.g. %s", round, len(failed), changes, failed[0])
		}
		live := liveSettings(t, c)
		d.Kill()
		saved := readState(t, data)

		addr = testkit.FreeAddr(t)
		d = startDaemon(t, data, addr)
		c.base = "http://" + addr
		s, _ := waitFlowing(t, c, d, time.Now())
		back := settingsDoc{Volume: s.Volume, Playing: s.Wanted == "playing"}
		d.Kill()
		if live != saved || back != live {
			mismatches = append(mismatches, fmt.Sprintf("round %d: live %+v, saved %+v, after restart %+v", round, live, saved, back))
		}
	}
	if len(mismatches) > 0 {
		t.Fatalf("%d of %d rounds came back with other settings than acknowledged:\n%s", len(mismatches), rounds, strings.Join(mismatches, "\n"))
	}
}

// mountTmpfs mounts a small tmpfs on a fresh dir for the test; it needs
// root, which the test suite has.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("mounting a tmpfs needs root: %v", err)
		}
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes path until the file system refuses (ENOSPC).
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill disk: %v", err)
			}
			return
		}
	}
}

// TestFullDiskChangeAnswers507 runs mohd on a data dir whose file system
// is full: a volume, stop or play change that cannot be saved must answer
// 507 disk_full with the JSON error, leave the live player as it was, and
// a restart (after space is freed) must come back to the settings before
// the refused changes. Once there is room again, changes are saved.
func TestFullDiskChangeAnswers507(t *testing.T) {
	data := mountTmpfs(t, "4m")
	token := createToken(t, data, "operate")
	addr := testkit.FreeAddr(t)
	d := startDaemon(t, data, addr, "--min-free-mb", "1")
	c := &apiClient{base: "http://" + addr, token: token, hc: &http.Client{Timeout: 10 * time.Second}}
	waitFlowing(t, c, d, time.Now())
	if code, err := c.do("PUT", "/api/v1/volume", map[string]int{"volume": 60}, nil); err != nil || code != 200 {
		t.Fatalf("volume 60 with room on disk: HTTP %d %v", code, err)
	}
	before := settingsDoc{Volume: 60, Playing: true}
	if got := readState(t, data); got != before {
		t.Fatalf("saved %+v, want %+v", got, before)
	}

	filler := filepath.Join(data, "filler")
	fillDisk(t, filler)
	type errDoc struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	for _, req := range []struct {
		method, path string
		body         any
	}{
		{"PUT", "/api/v1/volume", map[string]int{"volume": 15}},
		{"POST", "/api/v1/player/stop", nil},
		{"PUT", "/api/v1/volume", map[string]int{"volume": 0}},
	} {
		var e errDoc
		code, err := c.do(req.method, req.path, req.body, &e)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusInsufficientStorage || e.Error.Code != "disk_full" || e.Error.Message == "" {
			t.Fatalf("%s %s on a full disk: HTTP %d %+v, want 507 disk_full", req.method, req.path, code, e)
		}
		if live := liveSettings(t, c); live != before {
			t.Fatalf("%s %s refused but the live player changed to %+v (want %+v)", req.method, req.path, live, before)
		}
	}
	// Play while playing changes nothing, so it needs no room.
	if code, err := c.do("POST", "/api/v1/player/play", nil, nil); err != nil || code != 200 {
		t.Fatalf("play while playing on a full disk: HTTP %d %v", code, err)
	}
	d.Kill()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if got := readState(t, data); got != before {
		t.Fatalf("state file after refused changes = %+v, want %+v", got, before)
	}
	addr = testkit.FreeAddr(t)
	d = startDaemon(t, data, addr, "--min-free-mb", "1")
	c.base = "http://" + addr
	s, _ := waitFlowing(t, c, d, time.Now())
	if back := (settingsDoc{Volume: s.Volume, Playing: s.Wanted == "playing"}); back != before {
		t.Fatalf("restart came back to %+v, want %+v", back, before)
	}
	// With room again the same change is acknowledged and saved.
	if code, err := c.do("PUT", "/api/v1/volume", map[string]int{"volume": 15}, nil); err != nil || code != 200 {
		t.Fatalf("volume 15 with room again: HTTP %d %v", code, err)
	}
	if got := readState(t, data); got.Volume != 15 {
		t.Fatalf("saved %+v after volume 15", got)
	}
}

// TestStateSaveErrorMeansOldOnDisk: Save's error tells the player the file
// still holds the previous settings (so the change is refused and live stays
// equal to disk). A write that fails before the rename leaves the old
// settings and is an error; one that fails only at the directory fsync,
// after the rename, has already put the new settings on disk, so refusing
// it would leave the live player behind what a restart comes back to.
func TestStateSaveErrorMeansOldOnDisk(t *testing.T) {
	prev := player.Settings{Volume: 40, Playing: true}
	next := player.Settings{Volume: 90, Playing: false}
	tests := []struct {
		name    string
		write   func(path string, data []byte, perm os.FileMode) error
		wantErr error
		want    player.Settings
	}{
		{
			name: "disk full before the rename",
			write: func(path string, data []byte, perm os.FileMode) error {
				return fmt.Errorf("write %s: %w", path, syscall.ENOSPC)
			},
			wantErr: syscall.ENOSPC,
			want:    prev,
		},
		{
			name: "directory fsync fails after the rename",
			write: func(path string, data []byte, perm os.FileMode) error {
				if err := atomicfile.WriteFile(path, data, perm); err != nil {
					return err
				}
				return fmt.Errorf("fsync dir %s: %w", filepath.Dir(path), syscall.EIO)
			},
			want: next,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStateStore(t.TempDir(), slog.New(slog.DiscardHandler))
			if err := s.Save(prev); err != nil {
				t.Fatal(err)
			}
			s.write = tc.write
			err := s.Save(next)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("Save = %v, but the new settings are on disk: the change must be accepted", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Save = %v, want an error wrapping %v", err, tc.wantErr)
			}
			if got := s.Load(); got != tc.want {
				t.Fatalf("on disk %+v, want %+v", got, tc.want)
			}
		})
	}
}
