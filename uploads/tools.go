package uploads

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// command prepares one run of an external decoder or encoder under moh's
// limits: an address-space cap (ulimit -v through sh, since os/exec cannot
// set rlimits on the child alone), its own process group so a timeout kills
// every process it started, and SIGKILL when mohd itself dies so a crash
// leaves no orphan writing into the store.
func (l *Library) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	kb := strconv.FormatInt(l.opts.ToolMemoryBytes>>10, 10)
	argv := append([]string{"-c", `ulimit -v ` + kb + ` && exec "$0" "$@"`, bin}, args...)
	cmd := exec.CommandContext(ctx, "/bin/sh", argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// toolBudget is the time one tool run may take for audio of the given length:
// decoders here run at hundreds of times real time, so 1/10 of the length is
// generous on a slow box, plus a fixed allowance for start-up.
func (l *Library) toolBudget(seconds float64) time.Duration {
	return l.opts.ToolTimeout + time.Duration(seconds/10*float64(time.Second))
}

// stderrTail keeps the end of a tool's stderr for error messages.
type stderrTail struct{ b bytes.Buffer }

func (s *stderrTail) Write(p []byte) (int, error) {
	s.b.Write(p)
	if s.b.Len() > 8192 {
		rest := s.b.Bytes()[s.b.Len()-4096:]
		s.b.Reset()
		s.b.Write(rest)
	}
	return len(p), nil
}

func (s *stderrTail) String() string {
	t := strings.TrimSpace(s.b.String())
	if t == "" {
		return "no message"
	}
	if i := strings.LastIndexByte(t, '\n'); i >= 0 && len(t) > 300 {
		t = t[i+1:]
	}
	return t
}

func toolError(name string, err error, stderr *stderrTail) error {
	return fmt.Errorf("%s: %w (%s)", name, err, stderr.String())
}
