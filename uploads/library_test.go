package uploads

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// distinctWAV writes a 2 s tone whose frequency makes its content (and
// so its id) unique.
func distinctWAV(t testing.TB, dir string, i int) string {
	p := filepath.Join(dir, "t"+string(rune('a'+i))+".wav")
	writeWAV16(t, p, 44100, 2, sine(44100, 2, 2, 300+float64(i)*50, -20))
	return p
}

func ids(ts []Track) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

func drain(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestLibraryOperations(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	l := testLib(t, func(o *Options) { o.DataDir = data })
	var tr []Track
	for i := range 3 {
		tk, existed, err := ingestFile(t, l, distinctWAV(t, dir, i))
		if err != nil || existed {
			t.Fatalf("ingest %d: %v existed=%v", i, err, existed)
		}
		if !drain(l.Changes()) {
			t.Errorf("no change signalled after ingest %d", i)
		}
		tr = append(tr, tk)
	}
	if got := ids(l.Tracks()); strings.Join(got, ",") != strings.Join(ids(tr), ",") {
		t.Fatalf("order %v, want upload order", got)
	}

	t.Run("duplicate", func(t *testing.T) {
		before := storeFiles(t, l)
		again, existed, err := ingestFile(t, l, distinctWAV(t, dir, 1))
		if err != nil || !existed || again.ID != tr[1].ID {
			t.Fatalf("duplicate: %v existed=%v id %s, want existing %s", err, existed, again.ID, tr[1].ID)
		}
		if len(l.Tracks()) != 3 || len(storeFiles(t, l)) != len(before) {
			t.Errorf("duplicate changed the library")
		}
	})

	t.Run("reorder", func(t *testing.T) {
		bad := [][]string{
			{tr[0].ID, tr[1].ID},                               // missing one
			{tr[0].ID, tr[1].ID, tr[1].ID},                     // twice
			{tr[0].ID, tr[1].ID, tr[2].ID, "0123456789abcdef"}, // unknown
			{tr[0].ID, tr[1].ID, "../../etc/passwd"},
		}
		for _, order := range bad {
			err := l.Reorder(order)
			if rf, ok := AsRefusal(err); !ok || rf.Code != CodeBadOrder {
				t.Errorf("Reorder(%v) = %v, want bad_order", order, err)
			}
		}
		want := []string{tr[2].ID, tr[0].ID, tr[1].ID}
		if err := l.Reorder(want); err != nil {
			t.Fatal(err)
		}
		if !drain(l.Changes()) {
			t.Error("no change signalled after reorder")
		}
		if got := ids(l.Tracks()); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("order %v, want %v", got, want)
		}
	})

	t.Run("preview", func(t *testing.T) {
		p, err := l.Preview(context.Background(), tr[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s, err := sniff(bytes.NewReader(b), int64(len(b)))
		if err != nil || s.Format != "wav" || s.SampleRate != 8000 || s.Channels != 1 || !strings.Contains(s.Detail, "µ-law") {
			t.Fatalf("preview is %+v %v, want 8 kHz mono µ-law WAV", s, err)
		}
		if secs := float64(s.DeclaredSamples) / 8000; secs < 1.9 || secs > 2.1 {
			t.Errorf("preview lasts %.2f s, want 2", secs)
		}
		fi, _ := os.Stat(p)
		p2, err := l.Preview(context.Background(), tr[0].ID)
		fi2, _ := os.Stat(p2)
		if err != nil || p2 != p || !fi2.ModTime().Equal(fi.ModTime()) {
			t.Errorf("second preview not served from cache")
		}
		if _, err := l.Preview(context.Background(), "0123456789abcdef"); !errors.Is(err, ErrNotFound) {
			t.Errorf("preview of unknown id: %v", err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		prev := l.previewPath(tr[0].ID)
		if err := l.Delete(tr[0].ID); err != nil {
			t.Fatal(err)
		}
		if !drain(l.Changes()) {
			t.Error("no change signalled after delete")
		}
		for _, p := range []string{tr[0].Path, tr[0].OriginalPath, prev} {
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still there after delete", p)
			}
		}
		if _, ok := l.Get(tr[0].ID); ok {
			t.Error("deleted track still listed")
		}
		err := l.Delete(tr[0].ID)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: %v, want not found", err)
		}
	})

	t.Run("reopen keeps order and metadata", func(t *testing.T) {
		want := l.Tracks()
		l2, err := Open(Options{DataDir: data})
		if err != nil {
			t.Fatal(err)
		}
		got := l2.Tracks()
		if len(got) != len(want) {
			t.Fatalf("reopened %d tracks, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i].ID != want[i].ID || got[i].Path != want[i].Path || got[i].LoudnessAfter != want[i].LoudnessAfter || !got[i].Added.Equal(want[i].Added) {
				t.Errorf("track %d reopened as %+v, want %+v", i, got[i], want[i])
			}
		}
	})
}

func TestNamesAreMetadataOnly(t *testing.T) {
	l := testLib(t, nil)
	evil := []struct{ in, want string }{
		{"../../x.mp3", "x.mp3"},
		{`C:\Users\pat\Music\hold.wav`, "hold.wav"},
		{"a\x00b.mp3", "ab.mp3"},
		{"bad\xff\xfe.mp3", "bad\uFFFD.mp3"},
		{"..", "untitled"},
		{"/", "untitled"},
		{"\u202Egnp.mp3", "gnp.mp3"},
		{strings.Repeat("é", 5000) + ".mp3", strings.Repeat("é", maxNameBytes/2)},
	}
	dir := t.TempDir()
	for i, c := range evil {
		if got := cleanName(c.in); got != c.want {
			t.Errorf("cleanName(%q) = %q, want %q", c.in, got, c.want)
		}
		if i >= 4 {
			continue // the rest only exercise cleanName; ingests are slow under -race
		}
		f, _ := os.Open(distinctWAV(t, dir, i))
		tr, _, err := l.Ingest(context.Background(), c.in, f, nil)
		f.Close()
		if err != nil {
			t.Fatalf("ingest as %q: %v", c.in, err)
		}
		if tr.Name != c.want || filepath.Dir(tr.Path) != l.rendDir || filepath.Base(tr.Path) != tr.ID+".mp3" {
			t.Errorf("name %q stored as %q at %s", c.in, tr.Name, tr.Path)
		}
	}
	// Nothing was written outside the data dir's store.
	entries, _ := os.ReadDir(filepath.Dir(l.store))
	for _, e := range entries {
		if e.Name() != "tracks" && e.Name() != "library" {
			t.Errorf("unexpected %s in the data dir", e.Name())
		}
	}
}

func TestOpenRecoversFromCrash(t *testing.T) {
	data := t.TempDir()
	l := testLib(t, func(o *Options) { o.DataDir = data })
	a, _, err := ingestFile(t, l, distinctWAV(t, t.TempDir(), 0))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := ingestFile(t, l, distinctWAV(t, t.TempDir(), 1))
	if err != nil {
		t.Fatal(err)
	}
	// What a crash can leave: temp files of every kind, a stored
	// rendition and original whose index entry was never written, and
	// (from outside damage) an entry whose rendition is gone.
	junk := []string{
		filepath.Join(l.origDir, ".moh-tmp-upload-123"),
		filepath.Join(l.rendDir, ".moh-tmp-rendition-9.mp3"),
		filepath.Join(l.prevDir, ".moh-tmp-preview-1.wav"),
		filepath.Join(l.store, ".moh-tmp-index.json-77"),
		filepath.Join(l.rendDir, "00000000deadbeef.mp3"),
		filepath.Join(l.origDir, "00000000deadbeef.wav"),
		filepath.Join(l.prevDir, "00000000deadbeef.wav"),
	}
	for _, p := range junk {
		os.WriteFile(p, []byte("partial"), 0o644)
	}
	os.Remove(b.Path)
	l2, err := Open(Options{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(l2.Tracks()); len(got) != 1 || got[0] != a.ID {
		t.Errorf("tracks after recovery %v, want only %s", got, a.ID)
	}
	for _, p := range append(junk, b.OriginalPath) {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived reopening", p)
		}
	}
	if _, err := os.Stat(a.Path); err != nil {
		t.Errorf("good track lost: %v", err)
	}
	// The index on disk agrees.
	l3, _ := Open(Options{DataDir: data})
	if len(l3.Tracks()) != 1 {
		t.Errorf("index not rewritten: %d tracks", len(l3.Tracks()))
	}
}

func TestDiskGuard(t *testing.T) {
	var free uint64 = 1 << 30
	l := testLib(t, func(o *Options) {
		o.MinFreeBytes = 100 << 20
		o.Statfs = func(string) (uint64, uint64, error) { return free, 8 << 30, nil }
		o.DiskCacheTTL = -1 // free changes between calls below
	})
	if d := l.Disk(); d.Warning || d.FreeBytes != 1<<30 || d.TotalBytes != 8<<30 {
		t.Errorf("plenty free: %+v", d)
	}
	free = 150 << 20
	if d := l.Disk(); !d.Warning || !strings.Contains(d.Message, "nearly full") {
		t.Errorf("150 MiB free with a 100 MiB margin: %+v, want a warning", d)
	}
	if _, _, err := ingestFile(t, l, distinctWAV(t, t.TempDir(), 0)); err != nil {
		t.Errorf("upload refused while only warning: %v", err)
	}
	free = 80 << 20
	if d := l.Disk(); !d.Warning || !strings.Contains(d.Message, "disk full") {
		t.Errorf("80 MiB free: %+v", d)
	}
	_, _, err := ingestFile(t, l, distinctWAV(t, t.TempDir(), 1))
	if rf, ok := AsRefusal(err); !ok || rf.Code != CodeDiskFull {
		t.Errorf("upload with 80 MiB free: %v, want disk_full", err)
	}
	// The real statfs answers for a real directory.
	if f, tot, err := statfs(t.TempDir()); err != nil || f == 0 || tot < f {
		t.Errorf("statfs: %d/%d %v", f, tot, err)
	}
}

func TestLoudnessEvensOut(t *testing.T) {
	l := testLib(t, nil)
	dir := t.TempDir()
	var after []float64
	for i, lufs := range []float64{-30, -20, -8} {
		x := pink(44100, 2, 4, 0, uint64(i+20))
		m := newMeter(44100, 2)
		m.Write(x)
		scale(x, lufs-m.Integrated())
		p := filepath.Join(dir, "p"+string(rune('0'+i))+".wav")
		writeWAV16(t, p, 44100, 2, x)
		tr, _, err := ingestFile(t, l, p)
		if err != nil {
			t.Fatal(err)
		}
		ff, fftp := ffmpegR128(t, tr.Path)
		t.Logf("made at %.0f LUFS: measured %.2f, after %.2f LUFS / %.2f dBTP (ffmpeg %.1f / %.1f), gain %.2f dB",
			lufs, tr.LoudnessBefore, tr.LoudnessAfter, tr.TruePeakAfter, ff, fftp, tr.GainDB)
		if d := tr.LoudnessBefore - lufs; d < -0.5 || d > 0.5 {
			t.Errorf("measured %.2f LUFS, made at %.0f", tr.LoudnessBefore, lufs)
		}
		if tr.LoudnessAfter < -19 || tr.LoudnessAfter > -17 {
			t.Errorf("after %.2f LUFS, want -18 ±1", tr.LoudnessAfter)
		}
		if ff < -19 || ff > -17 || ff-tr.LoudnessAfter > 0.3 || tr.LoudnessAfter-ff > 0.3 {
			t.Errorf("ffmpeg measures the rendition at %.1f LUFS, moh %.2f", ff, tr.LoudnessAfter)
		}
		if tr.TruePeakAfter > -1 || fftp > -0.9 {
			t.Errorf("true peak after %.2f dBTP (ffmpeg %.1f), want ≤ -1", tr.TruePeakAfter, fftp)
		}
		after = append(after, tr.LoudnessAfter)
	}
	for _, a := range after[1:] {
		if d := a - after[0]; d > 1 || d < -1 {
			t.Errorf("renditions differ by %.2f LU", d)
		}
	}
}

func TestNormaliseOff(t *testing.T) {
	l := testLib(t, func(o *Options) { o.NormaliseOff = true })
	tr, _, err := ingestFile(t, l, distinctWAV(t, t.TempDir(), 0))
	if err != nil {
		t.Fatal(err)
	}
	if tr.GainDB != 0 || tr.LoudnessAfter-tr.LoudnessBefore > 0.5 || tr.LoudnessBefore-tr.LoudnessAfter > 0.5 {
		t.Errorf("normalising off: gain %.2f, %.2f → %.2f LUFS", tr.GainDB, tr.LoudnessBefore, tr.LoudnessAfter)
	}
}

func TestLostIndexKeepsOriginals(t *testing.T) {
	data := t.TempDir()
	l := testLib(t, func(o *Options) { o.DataDir = data })
	tr, _, err := ingestFile(t, l, distinctWAV(t, t.TempDir(), 0))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(l.index, []byte("{not json"), 0o644)
	l2 := testLib(t, func(o *Options) { o.DataDir = data })
	if len(l2.Tracks()) != 0 {
		t.Fatalf("tracks from a corrupt index: %v", l2.Tracks())
	}
	if _, err := os.Stat(l.index + ".corrupt"); err != nil {
		t.Errorf("corrupt index not kept: %v", err)
	}
	// The original went back to the music folder; the watcher re-adds it.
	testkit.Go(t, l2.Run)
	waitFor(t, "the recovered original to be re-ingested", 20*time.Second, func() bool {
		got, ok := l2.Get(tr.ID)
		return ok && got.Path == tr.Path
	})
}
