package grubenv

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// block is what GRUB's save_env writes for body: the signature, the
// lines, '#' up to 1024 bytes.
func block(body string) []byte {
	b := signature + body
	return []byte(b + strings.Repeat("#", Size-len(b)))
}

func TestGrubenvParseRender(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		vars []Var
	}{
		{"empty", "", nil},
		{"rauc slots", "ORDER=A B\nA_OK=1\nB_OK=0\nA_TRY=0\n",
			[]Var{{"ORDER", "A B"}, {"A_OK", "1"}, {"B_OK", "0"}, {"A_TRY", "0"}}},
		{"escaped backslash and newline", "k=a\\\\b\\\nc\n", []Var{{"k", "a\\b\nc"}}},
		{"empty value", "k=\n", []Var{{"k", ""}}},
		{"skipped line kept", "a=1\n#note\nb=2\n", []Var{{"a", "1"}, {"b", "2"}}},
		{"duplicate names listed twice", "a=1\na=2\n", []Var{{"a", "1"}, {"a", "2"}}},
		{"exactly full", "k=" + strings.Repeat("v", Size-len(signature)-3) + "\n",
			[]Var{{"k", strings.Repeat("v", Size-len(signature)-3)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := block(tc.body)
			e, err := Parse(in)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Vars(); !equalVars(got, tc.vars) {
				t.Errorf("vars %q, want %q", got, tc.vars)
			}
			out, err := e.Render()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, in) {
				t.Errorf("render changed the block:\n%q\nwant\n%q", out, in)
			}
		})
	}
}

func equalVars(a, b []Var) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGrubenvEdits: the block after each edit is the one GRUB's envblk.c makes
// (same order, values escaped, the freed bytes back to '#').
func TestGrubenvEdits(t *testing.T) {
	for _, tc := range []struct {
		name string
		from string
		edit func(e *Env) error
		want string
	}{
		{"set keeps place", "a=1\nb=2\nc=3\n", func(e *Env) error { return e.Set("b", "twenty") }, "a=1\nb=twenty\nc=3\n"},
		{"set shorter", "a=long\nb=2\n", func(e *Env) error { return e.Set("a", "") }, "a=\nb=2\n"},
		{"new goes last", "a=1\n#note\n", func(e *Env) error { return e.Set("z", "x\ny") }, "a=1\n#note\nz=x\\\ny\n"},
		{"set first of two", "a=1\na=2\n", func(e *Env) error { return e.Set("a", "9") }, "a=9\na=2\n"},
		{"unset", "a=1\nb=2\nc=3\n", func(e *Env) error { e.Unset("b"); return nil }, "a=1\nc=3\n"},
		{"unset first of two", "a=1\nb=2\na=3\n", func(e *Env) error { e.Unset("a"); return nil }, "b=2\na=3\n"},
		{"unset missing", "a=1\n", func(e *Env) error { e.Unset("zz"); return nil }, "a=1\n"},
		{"prefix is another name", "ab=1\n", func(e *Env) error { return e.Set("a", "2") }, "ab=1\na=2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse(block(tc.from))
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.edit(e); err != nil {
				t.Fatal(err)
			}
			got, err := e.Render()
			if err != nil {
				t.Fatal(err)
			}
			if want := block(tc.want); !bytes.Equal(got, want) {
				t.Errorf("got\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestGrubenvParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"short", []byte(signature + "###")},
		{"long", append(block(""), '#')},
		{"no signature", bytes.Repeat([]byte{'#'}, Size)},
		{"NUL", block("a=\x00\n")},
		{"line without =", block("junk\n")},
		{"last line without newline", []byte(signature + "a=1" + strings.Repeat("#", Size-len(signature)-3))},
		{"text in the padding", block("a=1\n##x")},
		{"escaped last newline", block("a=1\\\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.in); !errors.Is(err, ErrNotEnvBlock) {
				t.Errorf("err %v, want ErrNotEnvBlock", err)
			}
		})
	}
}

func TestGrubenvSetRefuses(t *testing.T) {
	for _, name := range []string{"", "#a", "a=b", "a\\b", "a\nb", "a\x00"} {
		var e Env
		if err := e.Set(name, "1"); !errors.Is(err, ErrBadName) {
			t.Errorf("Set(%q): err %v, want ErrBadName", name, err)
		}
	}
	var e Env
	if err := e.Set("a", "x\x00"); err == nil {
		t.Error("a value with NUL was taken")
	}
	if len(e.Vars()) != 0 {
		t.Errorf("a refused set left %v", e.Vars())
	}
}

// TestGrubenvWriteInPlace: the first Write creates the block; later ones write
// the same inode, at the same size, and fsync it with the new bytes in.
func TestGrubenvWriteInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grubenv")
	var e Env
	if err := e.Set("ORDER", "A B"); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, &e); err != nil {
		t.Fatal(err)
	}
	first := stat(t, path)
	if first.Size != Size {
		t.Fatalf("created %d bytes", first.Size)
	}

	var synced [][]byte
	syncFile = func(f *os.File) error {
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			return err
		}
		if st.Ino != first.Ino {
			t.Errorf("fsync of inode %d, the block is %d", st.Ino, first.Ino)
		}
		b, err := os.ReadFile(path)
		synced = append(synced, b)
		if err != nil {
			return err
		}
		return f.Sync()
	}
	t.Cleanup(func() { syncFile = (*os.File).Sync })

	for i, v := range []string{"B A", "A", "A B " + strings.Repeat("x", 500)} {
		r, err := Read(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Set("ORDER", v); err != nil {
			t.Fatal(err)
		}
		if err := r.Set("A_TRY", "1"); err != nil {
			t.Fatal(err)
		}
		if err := Write(path, r); err != nil {
			t.Fatal(err)
		}
		st := stat(t, path)
		if st.Ino != first.Ino || st.Size != Size {
			t.Errorf("write %d: inode %d size %d, want inode %d size %d", i, st.Ino, st.Size, first.Ino, Size)
		}
		want, _ := r.Render()
		if len(synced) != i+1 || !bytes.Equal(synced[i], want) {
			t.Fatalf("write %d: %d fsyncs; the last did not hold the new block", i, len(synced))
		}
		if got, _ := Read(path); got == nil {
			t.Fatal("block unreadable after write")
		} else if v2, _ := got.Get("ORDER"); v2 != v {
			t.Errorf("write %d: ORDER=%q, want %q", i, v2, v)
		}
	}
}

// TestGrubenvWriteRefusesUntouched: a block too large, or a file that is not a
// GRUB block, leaves the file as it was.
func TestGrubenvWriteRefusesUntouched(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content []byte
		value   string
		want    error
	}{
		{"too large", block("a=1\n"), strings.Repeat("v", Size), ErrTooLarge},
		{"not a block", bytes.Repeat([]byte("x"), Size), "1", ErrNotEnvBlock},
		{"wrong size", []byte(signature + "####"), "1", ErrNotEnvBlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			var e Env
			if err := e.Set("a", tc.value); err != nil {
				t.Fatal(err)
			}
			if err := Write(path, &e); !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, tc.content) {
				t.Errorf("file changed to %q", got)
			}
		})
	}
}

func stat(t *testing.T, path string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestGrubenvNew: a new block is byte for byte the one Debian's grub-editenv
// create writes (its warning line, no variables).
func TestGrubenvNew(t *testing.T) {
	got, err := New().Render()
	if err != nil {
		t.Fatal(err)
	}
	if want := block("# WARNING: Do not edit this file by tools other than grub-editenv!!!\n"); !bytes.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if vs := New().Vars(); len(vs) != 0 {
		t.Errorf("vars %v", vs)
	}
}
