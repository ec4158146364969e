package webui

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mohproject/moh/uploads"
)

// tinyDisk mounts a tmpfs of size bytes on a temp dir for the test: a
// real full file system, not an injected error, so every layer's error
// wrapping between the kernel's ENOSPC and the HTTP answer is exercised.
func tinyDisk(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (make test runs as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	})
	return dir
}

// fillDisk writes one file until the file system holding dir is full.
func fillDisk(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	// Small writes may still fit in the last partial page: take it too.
	for {
		if _, err := f.Write(buf[:1]); err != nil {
			return
		}
	}
}

// TestFullDisk: with the data dir's file system full, every change the
// admin makes is answered 507 disk_full with the JSON error and a message
// saying what to do, and nothing is half-changed.
func TestFullDisk(t *testing.T) {
	disk := tinyDisk(t, 24<<20)
	src := t.TempDir()
	small, _ := os.ReadFile(makeMP3(t, src, "small.mp3", 2, 440))
	small2, _ := os.ReadFile(makeMP3(t, src, "small2.mp3", 2, 660))
	fresh, _ := os.ReadFile(makeMP3(t, src, "fresh.mp3", 4, 550))
	big, _ := os.ReadFile(makeMP3(t, src, "big.mp3", 60, 330))
	for len(big) < 2<<20 {
		big = append(big, big...) // concatenated MP3 is still MP3; only the size matters here
	}

	// The library's own free-space guard is off: this is the kernel's
	// ENOSPC reaching the answer.
	lib := openLibrary(t, func(o *uploads.Options) { o.DataDir = filepath.Join(disk, "lib") })
	data := filepath.Join(disk, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(data, testPW); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{library: lib, opts: func(o *Options) { o.DataDir = data }})
	admin, _, err := CreateToken(data, "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	_, spare, err := CreateToken(data, "read", "spare")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, content := range [][]byte{small, small2} {
		resp, body := e.upload(admin, "t.mp3", content, nil)
		if resp.StatusCode != 201 {
			t.Fatalf("upload with room: %d %s", resp.StatusCode, body)
		}
		ids = append(ids, lib.Tracks()[len(lib.Tracks())-1].ID)
	}
	tokensBefore, _ := os.ReadFile(filepath.Join(data, TokensFile))

	t.Run("upload bigger than the free space", func(t *testing.T) {
		// Leave room for a little, not for the upload.
		fillDisk(t, disk)
		os.Truncate(filepath.Join(disk, "filler"), mustSize(t, filepath.Join(disk, "filler"))-(1<<20))
		resp, body := e.upload(admin, "big.mp3", big, nil)
		wantError(t, resp, body, 507, "disk_full")
		t.Logf("%d %s", resp.StatusCode, body)
	})
	t.Run("upload that fits but its rendition does not", func(t *testing.T) {
		os.Remove(filepath.Join(disk, "filler"))
		fillDisk(t, disk)
		os.Truncate(filepath.Join(disk, "filler"), mustSize(t, filepath.Join(disk, "filler"))-int64(len(fresh))-(16<<10))
		resp, body := e.upload(admin, "fits.mp3", fresh, nil)
		wantError(t, resp, body, 507, "disk_full")
		t.Logf("%d %s", resp.StatusCode, body)
	})
	os.Remove(filepath.Join(disk, "filler"))
	// The second track's caller preview is rendered while there is room;
	// the first track has none.
	if resp, body := e.do(nil, "GET", "/api/v1/tracks/"+ids[1]+"/preview", nil, bearer(admin)); resp.StatusCode != 200 {
		t.Fatalf("preview with room: %d %s", resp.StatusCode, body)
	}
	fillDisk(t, disk)
	cases := []struct {
		name, method, path, body string
	}{
		{"token create", "POST", "/api/v1/tokens", `{"scope":"read","name":"x"}`},
		{"token revoke", "DELETE", "/api/v1/tokens/" + spare.ID, ""},
		{"playlist reorder", "PUT", "/api/v1/playlist", fmt.Sprintf(`{"order":[%q,%q]}`, ids[1], ids[0])},
		{"track delete", "DELETE", "/api/v1/tracks/" + ids[0], ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := bearer(admin)
			if c.body != "" {
				h["Content-Type"] = "application/json"
			}
			resp, body := e.do(nil, c.method, c.path, strings.NewReader(c.body), h)
			wantError(t, resp, body, 507, "disk_full")
			if !strings.Contains(string(body), "disk") {
				t.Errorf("message does not say the disk is full: %s", body)
			}
			t.Logf("%d %s", resp.StatusCode, body)
		})
	}
	if got := lib.Tracks(); len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[1] {
		t.Errorf("library changed by refused requests: %v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(data, TokensFile)); !bytes.Equal(b, tokensBefore) {
		t.Errorf("token file changed by refused requests")
	}
	// Deleting a track is how an admin makes room, so on a full disk it
	// must not need room itself: the track's cached preview goes first.
	t.Run("track delete frees its preview first", func(t *testing.T) {
		resp, body := e.do(nil, "DELETE", "/api/v1/tracks/"+ids[1], nil, bearer(admin))
		if resp.StatusCode != 204 {
			t.Fatalf("delete of a track with a preview on a full disk: %d %s", resp.StatusCode, body)
		}
		if got := lib.Tracks(); len(got) != 1 || got[0].ID != ids[0] {
			t.Errorf("library after the delete: %v", got)
		}
	})

	// With room again the same requests work.
	os.Remove(filepath.Join(disk, "filler"))
	resp, body := e.do(nil, "DELETE", "/api/v1/tokens/"+spare.ID, nil, bearer(admin))
	if resp.StatusCode != 204 {
		t.Fatalf("revoke with room: %d %s", resp.StatusCode, body)
	}
}

func mustSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
