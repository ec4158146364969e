package uploads

// This file runs the external programs ingest needs (decoders, the
// resampler, the encoder): which ones they are, where they are found, and
// how one run of any of them is limited, watched and reported.

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/internal/prio"
)

// ingestTools is the one list of the programs ingest runs, each with the
// Tools field that may point it elsewhere.
var ingestTools = []struct {
	name string
	path func(*Tools) *string
}{
	{"mpg123", func(t *Tools) *string { return &t.MPG123 }},
	{"sox", func(t *Tools) *string { return &t.Sox }},
	{"lame", func(t *Tools) *string { return &t.Lame }},
}

// resolveTools fills every empty Tools field from PATH; a program not
// found keeps its bare name, so its first use fails with a clear
// "executable file not found".
func resolveTools(t *Tools) {
	for _, it := range ingestTools {
		p := it.path(t)
		if *p == "" {
			if found, err := exec.LookPath(it.name); err == nil {
				*p = found
			} else {
				*p = it.name
			}
		}
	}
}

// MissingTools names the ingest programs that o.Tools (or, where a field
// is empty, PATH) does not give as an executable file: until they are
// installed every upload fails. mohd says so at start, not at the first
// upload.
func MissingTools(o Options) []string {
	var missing []string
	for _, it := range ingestTools {
		p := *it.path(&o.Tools)
		if p == "" {
			p = it.name
		}
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, it.name)
		}
	}
	return missing
}

// tool is one run of an external program: its name for messages, the
// command, and the end of what it wrote on stderr.
type tool struct {
	name   string
	cmd    *exec.Cmd
	stderr stderrTail
}

// tool prepares one run of the named ingest program (one of ingestTools)
// under moh's limits: an address-space cap (ulimit -v through sh, since
// os/exec cannot set rlimits on the child alone), its own process group so
// a timeout kills every process it started, and SIGKILL when mohd itself
// dies so a crash leaves no orphan writing into the store.
func (l *Library) tool(ctx context.Context, name string, args ...string) *tool {
	bin := name
	for _, it := range ingestTools {
		if it.name == name {
			bin = *it.path(&l.opts.Tools)
		}
	}
	kb := strconv.FormatInt(l.opts.ToolMemoryBytes>>10, 10)
	argv := append([]string{"-c", `ulimit -v ` + kb + ` && exec "$0" "$@"`, bin}, args...)
	t := &tool{name: name, cmd: exec.CommandContext(ctx, "/bin/sh", argv...)}
	cmd := t.cmd
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
	cmd.Stderr = &t.stderr
	return t
}

// start starts the program at background priority: nice 10 and the idle
// I/O class (internal/prio). A 2-hour upload keeps sox and lame busy for
// minutes, and the line must not stutter meanwhile.
func (t *tool) start() error {
	if err := t.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", t.name, err)
	}
	prio.Process(t.cmd.Process.Pid)
	return nil
}

// wait waits for the program; a failure names it and quotes its stderr.
func (t *tool) wait() error {
	if err := t.cmd.Wait(); err != nil {
		return t.fail(err)
	}
	return nil
}

// run starts the program and waits for it.
func (t *tool) run() error {
	if err := t.start(); err != nil {
		return err
	}
	return t.wait()
}

func (t *tool) fail(err error) error {
	return fmt.Errorf("%s: %w (%s)", t.name, err, t.stderr.String())
}

// toolBudget is the time one tool run may take for audio of the given length:
// decoders here run at hundreds of times real time, so 1/10 of the length is
// generous on a slow box, plus a fixed allowance for start-up.
func (l *Library) toolBudget(seconds float64) time.Duration {
	return l.opts.ToolTimeout + time.Duration(seconds/10*float64(time.Second))
}

// stderrTail keeps the end of a tool's stderr for error messages, and
// counts the lines that report a decoding error (mpg123 prints one per
// frame it cannot decode), which say how damaged the input is.
type stderrTail struct {
	b      bytes.Buffer
	line   []byte // the line being written, up to maxLine bytes
	errors int
}

const maxLine = 512

func (s *stderrTail) Write(p []byte) (int, error) {
	s.b.Write(p)
	if s.b.Len() > 8192 {
		rest := s.b.Bytes()[s.b.Len()-4096:]
		s.b.Reset()
		s.b.Write(rest)
	}
	for _, c := range p {
		if c != '\n' {
			if len(s.line) < maxLine {
				s.line = append(s.line, c)
			}
			continue
		}
		if bytes.Contains(s.line, []byte("] error: ")) {
			s.errors++
		}
		s.line = s.line[:0]
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

// pathLike matches what a tool's message may hold of a server path: the
// data dir, a temp file's name. Those belong in the log, not in what the
// API client is told.
var pathLike = regexp.MustCompile("[`'\"]?(/[^\\s`'\":]+|" + regexp.QuoteMeta(atomicfile.TempPrefix) + "[^\\s`'\":]+)[`'\"]?")

// publicDetail is err as the admin may read it: the tool's words with
// every path in them replaced by "[path]".
func publicDetail(err error) string {
	return pathLike.ReplaceAllString(err.Error(), "[path]")
}
