package uploads

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestIngestToolsRunAtBackgroundPriority: every program an ingest starts
// runs at nice 10 in the idle I/O class, so a long upload never competes
// with playback. Each tool is a wrapper that waits a moment (the priority
// is set just after the start), notes its own nice value and I/O class,
// then execs the real program.
func TestIngestToolsRunAtBackgroundPriority(t *testing.T) {
	dir := t.TempDir()
	seen := filepath.Join(dir, "seen")
	wrap := func(name string) string {
		real, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s is required (Debian package %s): %v", name, name, err)
		}
		p := filepath.Join(dir, name+"-wrapper")
		script := "#!/bin/sh\nsleep 0.2\n" +
			`printf '%s nice=%s io=%s\n' ` + name + ` "$(cut -d' ' -f19 /proc/$$/stat)" "$(ionice -p $$ | cut -d: -f1)" >> ` + seen + "\n" +
			`exec ` + real + ` "$@"` + "\n"
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	l := testLib(t, func(o *Options) {
		o.Tools = Tools{MPG123: wrap("mpg123"), Sox: wrap("sox"), Lame: wrap("lame")}
	})
	in := filepath.Join(dir, "in.mp3")
	run(t, "lame", "--silent", "-b", "128", sineWAV(t, dir, 44100, 2, -20), in)
	if _, _, err := ingestFile(t, l, in); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(seen)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(strings.ReplaceAll(string(b), "\n", " "))
	tools := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		tools[f[0]] = true
		if len(f) != 3 || f[1] != "nice=10" || f[2] != "io=idle" {
			t.Errorf("%s, want nice=10 io=idle", line)
		}
	}
	for _, name := range []string{"mpg123", "sox", "lame"} {
		if !tools[name] {
			t.Errorf("%s never ran (saw %v)", name, lines)
		}
	}
	t.Logf("tool runs:\n%s", b)
}
