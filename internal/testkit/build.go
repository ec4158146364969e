package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// MohdPackage is the daemon's import path; `go build` finds it from any
// package directory of the module, so every test builds the same way.
const MohdPackage = "github.com/mohproject/moh/cmd/mohd"

var (
	buildsMu sync.Mutex
	builds   = map[string]func() (string, error){}
)

// BuildMohd builds the real daemon with `main.version` set to version
// ("" keeps the default), once per version per test binary; later calls
// return the same path. The binary stays in the system temp dir, where
// a reboot or tmp cleaner removes it.
func BuildMohd(version string) (string, error) {
	buildsMu.Lock()
	b, ok := builds[version]
	if !ok {
		b = sync.OnceValues(func() (string, error) { return buildMohd(version) })
		builds[version] = b
	}
	buildsMu.Unlock()
	return b()
}

func buildMohd(version string) (string, error) {
	dir, err := os.MkdirTemp("", "moh-testkit-mohd-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mohd")
	args := []string{"build", "-o", bin}
	if version != "" {
		args = append(args, "-ldflags", "-X main.version="+version)
	}
	out, err := exec.Command("go", append(args, MohdPackage)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build mohd: %w: %s", err, out)
	}
	return bin, nil
}

// MustBuildMohd is BuildMohd for a test: a failed build ends it.
func MustBuildMohd(t testing.TB, version string) string {
	t.Helper()
	bin, err := BuildMohd(version)
	if err != nil {
		t.Fatalf("build mohd: %v", err)
	}
	return bin
}
