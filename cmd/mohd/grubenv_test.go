package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/mohproject/moh/internal/grubenv"
)

// grubEditenv is the real grub-editenv (Debian grub-common), the tool
// mohd grubenv stands in for.
func grubEditenv(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("grub-editenv")
	if err != nil {
		t.Fatalf("grub-editenv not installed (make deps, or apt-get install grub-common): %v", err)
	}
	return p
}

// runTool runs a command and returns its exit code and both outputs.
func runTool(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), out.String(), errb.String()
	}
	if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return 0, out.String(), errb.String()
}

func inode(t *testing.T, path string) (uint64, int64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino, st.Size
}

// TestGrubenvMatchesGrubEditenv runs the same commands through the real
// grub-editenv and through mohd grubenv, each on its own file: after
// every step both files hold the same bytes, list prints the same lines
// and both fail on the same steps. mohd's file keeps its inode and its
// 1024 bytes throughout.
func TestGrubenvMatchesGrubEditenv(t *testing.T) {
	ge := grubEditenv(t)
	long := strings.Repeat("v", 850)
	steps := []struct {
		args  []string
		fails bool
	}{
		{args: []string{"set", "ORDER=A B", "A_OK=1", "B_OK=1", "A_TRY=0", "B_TRY=0"}},
		{args: []string{"set", "A_TRY=1"}},
		{args: []string{"set", "ORDER=B A", "B_TRY=1"}},
		{args: []string{"unset", "A_TRY"}},
		{args: []string{"set", "A_TRY=0"}},
		{args: []string{"set", "note=back\\slash and\nnewline", "empty="}},
		{args: []string{"unset", "missing", "B_OK"}},
		{args: []string{"set", "note=short"}},
		{args: []string{"set", "big=" + long}},
		{args: []string{"set", "big=" + long + long}, fails: true}, // too large: nothing written
		{args: []string{"set", "ok=1", "bad"}, fails: true},        // no '=': ok=1 not kept either
		{args: []string{"unset", "big"}},
		{args: []string{"set", "ORDER=A B", "A_OK=0"}},
	}
	for _, start := range []struct {
		name  string
		block []byte // nil: no file yet
	}{
		{"new file", nil},
		{"hand-edited block", []byte("# GRUB Environment Block\nsaved_entry=moh\n#kept as it is\nA_OK=1\n" +
			strings.Repeat("#", grubenv.Size-len("# GRUB Environment Block\nsaved_entry=moh\n#kept as it is\nA_OK=1\n")))},
	} {
		t.Run(start.name, func(t *testing.T) {
			dir := t.TempDir()
			theirs, ours := filepath.Join(dir, "grubenv.grub"), filepath.Join(dir, "grubenv.moh")
			if start.block != nil {
				for _, p := range []string{theirs, ours} {
					if err := os.WriteFile(p, start.block, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			// list on a missing file creates it, in both.
			c1, l1, _ := runTool(t, ge, theirs, "list")
			c2, l2, _ := runTool(t, mohdBin, "grubenv", ours, "list")
			if c1 != 0 || c2 != 0 || l1 != l2 {
				t.Fatalf("first list: grub-editenv %d %q, mohd %d %q", c1, l1, c2, l2)
			}
			ino, size := inode(t, ours)
			for i, sc := range steps {
				step := sc.args
				c1, _, e1 := runTool(t, ge, append([]string{theirs}, step...)...)
				c2, _, e2 := runTool(t, mohdBin, append([]string{"grubenv", ours}, step...)...)
				if (c1 != 0) != sc.fails || (c2 != 0) != sc.fails {
					t.Fatalf("step %d %q: grub-editenv exit %d (%s), mohd exit %d (%s)", i, step, c1, e1, c2, e2)
				}
				if c2 != 0 && e2 == "" {
					t.Errorf("step %d: mohd failed without a message", i)
				}
				a, _ := os.ReadFile(theirs)
				b, _ := os.ReadFile(ours)
				if !bytes.Equal(a, b) {
					t.Fatalf("step %d %q: files differ\ngrub-editenv: %q\nmohd:         %q", i, step, a, b)
				}
				_, l1, _ := runTool(t, ge, theirs, "list")
				_, l2, _ := runTool(t, mohdBin, "grubenv", ours, "list")
				if l1 != l2 {
					t.Fatalf("step %d: list\ngrub-editenv: %q\nmohd:         %q", i, l1, l2)
				}
				if gi, gs := inode(t, ours); gi != ino || gs != size || gs != grubenv.Size {
					t.Fatalf("step %d: inode %d size %d, was inode %d size %d", i, gi, gs, ino, size)
				}
			}
		})
	}
}

// TestGrubenvWritesInPlace watches the syscalls of a set: the block is
// opened read-write without O_TRUNC or O_CREAT, 1024 bytes are written
// at offset 0 and the same descriptor is fsynced; nothing is renamed or
// truncated.
func TestGrubenvWritesInPlace(t *testing.T) {
	st, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed: the in-place write is checked by inode in TestGrubenvMatchesGrubEditenv")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "grubenv")
	if code, _, e := runTool(t, mohdBin, "grubenv", path, "set", "ORDER=A B"); code != 0 {
		t.Fatalf("create: %d %s", code, e)
	}
	trace := filepath.Join(dir, "trace")
	code, _, e := runTool(t, st, "-f", "-qq", "-o", trace, "-e", "trace=openat,open,pwrite64,write,fsync,fdatasync,rename,renameat,renameat2,truncate,ftruncate",
		mohdBin, "grubenv", path, "set", "ORDER=B A")
	if code != 0 {
		t.Fatalf("strace mohd grubenv: %d %s", code, e)
	}
	raw, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	log := string(raw)
	open := regexp.MustCompile(`openat\(AT_FDCWD, "` + regexp.QuoteMeta(path) + `", ([A-Z_|]+)[^)]*\) = (\d+)`)
	var fd string
	for _, m := range open.FindAllStringSubmatch(log, -1) {
		if strings.Contains(m[1], "O_RDWR") {
			if strings.Contains(m[1], "O_TRUNC") || strings.Contains(m[1], "O_CREAT") {
				t.Errorf("block opened with %s", m[1])
			}
			fd = m[2]
		}
	}
	if fd == "" {
		t.Fatalf("no read-write open of %s in:\n%s", path, log)
	}
	write := regexp.MustCompile(`pwrite64\(` + fd + `, "[^"]*"\.*, 1024, 0\) = 1024`)
	sync := regexp.MustCompile(`fsync\(` + fd + `\) += 0`)
	w, s := write.FindStringIndex(log), sync.FindStringIndex(log)
	if w == nil || s == nil || s[0] < w[0] {
		t.Errorf("want pwrite64(%s, …, 1024, 0) then fsync(%s):\n%s", fd, fd, log)
	}
	if regexp.MustCompile(`(rename|truncate)`).MatchString(log) {
		t.Errorf("the block was renamed or truncated:\n%s", log)
	}
	if ino, size := inode(t, path); size != grubenv.Size || ino == 0 {
		t.Errorf("size %d after the write", size)
	}
}

// TestGrubenvMisuse: a bad command line exits 2 with the usage on stderr,
// --help prints it to stdout.
func TestGrubenvMisuse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grubenv")
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"grubenv", "--help"}, 0, "usage: mohd grubenv", ""},
		{[]string{"help", "grubenv"}, 0, "usage: mohd grubenv", ""},
		{[]string{"grubenv"}, 2, "", "usage: mohd grubenv"},
		{[]string{"grubenv", path, "create"}, 2, "", "unknown command"},
		{[]string{"grubenv", path, "list", "x"}, 2, "", "list takes no arguments"},
		{[]string{"grubenv", path, "set", "#x=1"}, 1, "", "invalid variable name"},
	} {
		code, out, e := runTool(t, mohdBin, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(e, tc.stderr) {
			t.Errorf("mohd %q: exit %d stdout %q stderr %q; want exit %d, stdout with %q, stderr with %q",
				tc.args, code, out, e, tc.code, tc.stdout, tc.stderr)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused command created %s: %v", path, err)
	}
}
