package programme

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func fileMod(t *testing.T, path string) time.Time {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

// TestStoreMigratesAndFollowsTheLibrary: the library order becomes the
// playlist default once, on disk; reopening keeps what was saved; a
// deleted track leaves every playlist, its message and its override; an
// upload joins default; a pure reorder of the library reorders default.
func TestStoreMigratesAndFollowsTheLibrary(t *testing.T) {
	dir := t.TempDir()
	lib := map[string]bool{"a": true, "b": true, "c": true}
	known := func(id string) bool { return lib[id] }
	st, err := Open(dir, []string{"a", "b", "c"}, known)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []Playlist
	b, err := os.ReadFile(filepath.Join(dir, PlaylistsFile))
	if err != nil || json.Unmarshal(b, &onDisk) != nil || len(onDisk) != 1 || !slices.Equal(onDisk[0].Tracks, []string{"a", "b", "c"}) {
		t.Fatalf("migration on disk: %s %v", b, err)
	}
	if err := st.PutPlaylist(Playlist{Name: "msgs", Tracks: []string{"b", "c"}, Message: &Message{Track: "c", EveryMinutes: 5}}, true); err != nil {
		t.Fatal(err)
	}
	if err := st.PutOverride(Override{Track: "c"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Reopened with another library order: nothing migrates again.
	st, err = Open(dir, []string{"c", "b", "a"}, known)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := st.Playlist(DefaultPlaylist); !slices.Equal(p.Tracks, []string{"a", "b", "c"}) {
		t.Fatalf("default after reopen: %v", p.Tracks)
	}
	if st.Override(time.Now()) == nil {
		t.Fatal("the override did not survive a restart")
	}
	// c deleted, d uploaded.
	delete(lib, "c")
	lib["d"] = true
	if err := st.SyncLibrary([]string{"a", "b", "d"}, []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := st.Playlist(DefaultPlaylist); !slices.Equal(p.Tracks, []string{"a", "b", "d"}) {
		t.Fatalf("default after delete and upload: %v", p.Tracks)
	}
	if p, _ := st.Playlist("msgs"); !slices.Equal(p.Tracks, []string{"b"}) || p.Message != nil {
		t.Fatalf("msgs after c went: %+v", p)
	}
	if o := st.Override(time.Now()); o != nil {
		t.Fatalf("an override of a deleted track stays: %+v", o)
	}
	if _, err := os.Stat(filepath.Join(dir, OverrideFile)); !os.IsNotExist(err) {
		t.Fatalf("override file: %v", err)
	}
	// The old PUT /api/v1/playlist: a reorder of the same set.
	if err := st.SyncLibrary([]string{"d", "a", "b"}, []string{"a", "b", "d"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := st.Playlist(DefaultPlaylist); !slices.Equal(p.Tracks, []string{"d", "a", "b"}) {
		t.Fatalf("default after a library reorder: %v", p.Tracks)
	}
	// Nothing changed: nothing is written.
	before := fileMod(t, filepath.Join(dir, PlaylistsFile))
	time.Sleep(20 * time.Millisecond)
	if err := st.SyncLibrary([]string{"d", "a", "b"}, []string{"d", "a", "b"}); err != nil {
		t.Fatal(err)
	}
	if !fileMod(t, filepath.Join(dir, PlaylistsFile)).Equal(before) {
		t.Fatal("an unchanged library rewrote the playlists")
	}
}

func TestStoreRefuses(t *testing.T) {
	st, err := Open(t.TempDir(), []string{"a"}, func(id string) bool { return id == "a" })
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.PutPlaylist(Playlist{Name: "p", Tracks: []string{"a"}}, true); err != nil {
		t.Fatal(err)
	}
	if err := st.PutOverride(Override{Playlist: "p"}, now); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"delete overridden": st.DeletePlaylist("p", now),
		"delete default":    st.DeletePlaylist(DefaultPlaylist, now),
		"equal rules overlap across midnight": st.PutSchedule(Schedule{Timezone: "UTC", Default: "default", Rules: []Rule{
			{Days: []string{"sun"}, From: "22:00", To: "02:00", Playlist: "p"},
			{Days: []string{"mon"}, From: "01:00", To: "05:00", Playlist: "p"}}}),
	} {
		var pe *Error
		if err == nil || !errorAs(err, &pe) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
	// Equal widths that do not overlap, and nested rules, are fine.
	if err := st.PutSchedule(Schedule{Timezone: "UTC", Default: "default", Rules: []Rule{
		{Days: []string{"sun"}, From: "22:00", To: "02:00", Playlist: "p"},
		{Days: []string{"mon"}, From: "02:00", To: "06:00", Playlist: "p"},
		{Days: []string{"mon"}, From: "03:00", To: "04:00", Playlist: "default"}}}); err != nil {
		t.Fatal(err)
	}
}

func errorAs(err error, pe **Error) bool {
	e, ok := err.(*Error)
	*pe = e
	return ok
}

// At start only a file copied in while mohd was down joins default: a
// track the admin took out of default, or uses only as a message, stays
// out, and the order of default is kept.
func TestStoreSyncAtStart(t *testing.T) {
	lib := map[string]bool{"a": true, "b": true, "m": true}
	known := func(id string) bool { return lib[id] }
	st, err := Open(t.TempDir(), []string{"a", "b", "m"}, known)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutPlaylist(Playlist{Name: DefaultPlaylist, Tracks: []string{"b"}, Message: &Message{Track: "m", EveryMinutes: 3}}, false); err != nil {
		t.Fatal(err)
	}
	if err := st.PutPlaylist(Playlist{Name: "other", Tracks: []string{"a"}}, true); err != nil {
		t.Fatal(err)
	}
	lib["new"] = true
	if err := st.SyncAtStart([]string{"m", "new", "a", "b"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := st.Playlist(DefaultPlaylist); !slices.Equal(p.Tracks, []string{"b", "new"}) || p.Message == nil {
		t.Fatalf("default after start: %+v", p)
	}
}
