package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// The state files keep their look (indented, a final newline, the mode
// asked for), and a value that cannot be encoded leaves the old file.
func TestWriteJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := WriteJSON(path, map[string]any{"phase": "idle", "n": 2}, 0o640); err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"n\": 2,\n  \"phase\": \"idle\"\n}\n"
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Fatalf("file = %q, %v; want %q", b, err, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode = %v, %v; want 0640", fi.Mode(), err)
	}
	if err := WriteJSON(path, map[string]any{"bad": make(chan int)}, 0o640); err == nil {
		t.Fatal("a channel was encoded")
	}
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Fatalf("after a failed write the file is %q", b)
	}
}
