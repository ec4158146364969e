package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/mohproject/moh/internal/testkit"
	"github.com/mohproject/moh/webui"
)

// runMohd runs the real binary and returns its exit code and both outputs.
func runMohd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(mohdBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("mohd %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// TestHelpAndMisuse: --help of every command prints its usage to stdout
// and exits 0; a mistake on the command line prints the error and the
// usage to stderr and exits 2 (mohd check: 3, UNKNOWN, as plugins must).
func TestHelpAndMisuse(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data") // must stay uncreated
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"-h"},
		{"run", "--help"}, {"install", "--help"}, {"uninstall", "-h"}, {"start", "--help"},
		{"stop", "--help"}, {"status", "--help"}, {"check", "--help"}, {"passwd", "--help"},
		{"token", "--help"}, {"token", "-h"}, {"token", "create", "--help"}, {"token", "list", "--help"},
		{"token", "revoke", "--help"}, {"help", "token"}, {"help", "passwd"},
	} {
		if len(args) > 1 {
			args = append(args, "--data", data)
		}
		code, out, errOut := runMohd(t, "", args...)
		name := args[0]
		if name == "help" && len(args) > 1 {
			name = args[1]
		}
		want := "usage: mohd " + name
		if strings.HasPrefix(name, "-") || len(args) == 1 || name == "help" {
			want = "usage: mohd COMMAND"
		}
		if code != 0 || !strings.Contains(out, want) || errOut != "" {
			t.Errorf("mohd %v: exit %d, stdout %q, stderr %q; want exit 0 and %q on stdout", args, code, out, errOut, want)
		}
		if name != "version" && !strings.HasPrefix(name, "-") && len(args) > 1 && !strings.Contains(out, "-data") {
			t.Errorf("mohd %v: the usage does not list the flags: %q", args, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: mohd COMMAND"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"run", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"run", "--max-minutes", "many"}, `invalid value "many" for flag -max-minutes`},
		{[]string{"passwd", "extra"}, `unexpected argument "extra"`},
		{[]string{"token"}, "say create, list or revoke"},
		{[]string{"token", "frob"}, `unknown verb "frob"`},
		{[]string{"token", "create"}, "--scope is required"},
		{[]string{"token", "revoke"}, "revoke needs the token's ID"},
		{[]string{"token", "list", "--bogus"}, "flag provided but not defined: -bogus"},
	} {
		args := tc.args
		if len(args) > 0 && args[0] != "frobnicate" {
			args = append(args, "--data", data)
		}
		code, out, errOut := runMohd(t, "", args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "usage: mohd") {
			t.Errorf("mohd %v: exit %d, stdout %q, stderr %q; want exit 2, %q and the usage on stderr", args, code, out, errOut, tc.want)
		}
	}
	code, out, errOut := runMohd(t, "", "check", "--bogus")
	if code != 3 || !strings.HasPrefix(out, "MOH UNKNOWN - ") || !strings.Contains(errOut, "usage: mohd check") {
		t.Errorf("mohd check --bogus: exit %d, stdout %q, stderr %q; want 3, UNKNOWN on stdout, usage on stderr", code, out, errOut)
	}
	if _, err := os.Lstat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("help or misuse touched the data dir: %v", err)
	}
}

// TestPasswdRefusesWeakPasswords: on stdin (no terminal) mohd passwd still
// reads one line, and refuses the passwords a guesser tries first, with
// the reason, leaving any old password in place.
func TestPasswdRefusesWeakPasswords(t *testing.T) {
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, deviceIDFile), []byte("moh-3fa2b1c4d5e6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"password":          "too short",
		"Password123!":      "too common",
		"mohmohmoh1":        "too common",
		"admin-moh-2024":    "too common",
		"1234567890":        "too simple",
		"moh-3fa2b1c4d5e6!": "the box's own name",
	}
	if host, _ := os.Hostname(); len(host) >= 3 {
		cases[host+"-1234567"] = "the box's own name"
	}
	for pw, want := range cases {
		code, _, errOut := runMohd(t, pw+"\n", "passwd", "--data", data)
		if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "nothing changed") {
			t.Errorf("passwd %q: exit %d, %q; want exit 1 and %q", pw, code, errOut, want)
		}
	}
	if set, _ := webui.PasswordSet(data); set {
		t.Fatal("a refused password was stored")
	}
	if code, out, errOut := runMohd(t, "correct horse battery staple\n", "passwd", "--data", data); code != 0 || !strings.Contains(out, "admin password set") {
		t.Fatalf("good password: exit %d %q %q", code, out, errOut)
	}
}

// ttySession runs mohd on a real pseudo-terminal, as a person at the
// console would, and lets the test answer its prompts.
type ttySession struct {
	t    *testing.T
	cmd  *exec.Cmd
	tty  *os.File
	mu   sync.Mutex
	seen bytes.Buffer
	done chan struct{}
}

func startTTY(t *testing.T, args ...string) *ttySession {
	t.Helper()
	s := &ttySession{t: t, cmd: exec.Command(mohdBin, args...), done: make(chan struct{})}
	tty, err := pty.Start(s.cmd)
	if err != nil {
		t.Fatalf("start on a pty: %v", err)
	}
	s.tty = tty
	go func() {
		defer close(s.done)
		buf := make([]byte, 1024)
		for {
			n, err := tty.Read(buf)
			s.mu.Lock()
			s.seen.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		tty.Close()
		<-s.done
	})
	return s
}

func (s *ttySession) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen.String()
}

// expect waits until the terminal shows want.
func (s *ttySession) expect(want string) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.output(), want) {
		if time.Now().After(deadline) {
			s.t.Fatalf("the terminal never showed %q; it shows:\n%q", want, s.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *ttySession) typeLine(text string) {
	s.t.Helper()
	if _, err := io.WriteString(s.tty, text+"\r"); err != nil {
		s.t.Fatal(err)
	}
}

// wait returns the exit code.
func (s *ttySession) wait() int {
	s.t.Helper()
	err := s.cmd.Wait()
	<-s.done
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return 0
}

// TestPasswdAtTerminal: at a terminal mohd passwd prompts, does not echo
// what is typed, asks again to confirm, and refuses a weak password before
// asking for the confirmation.
func TestPasswdAtTerminal(t *testing.T) {
	const good = "a quiet winter harbour"
	// passwd starts mohd passwd over data at a terminal and types first
	// at its first prompt.
	passwd := func(t *testing.T, data, first string) *ttySession {
		t.Helper()
		s := startTTY(t, "passwd", "--data", data)
		s.expect("New admin password: ")
		s.typeLine(first)
		return s
	}
	t.Run("set", func(t *testing.T) {
		data := t.TempDir()
		s := passwd(t, data, good)
		s.expect("Repeat it: ")
		s.typeLine(good)
		if code := s.wait(); code != 0 || !strings.Contains(s.output(), "admin password set") {
			t.Fatalf("exit %d, terminal:\n%q", code, s.output())
		}
		if strings.Contains(s.output(), "quiet winter") {
			t.Errorf("the password was echoed:\n%q", s.output())
		}
		// The stored password is the one typed: the daemon lets it in.
		addr := testkit.FreeAddr(t)
		d := startDaemon(t, data, addr)
		defer d.Kill()
		waitHealthy(t, "http://"+addr)
		hc := loginClientFrom("127.0.0.1", 1)
		if code, body, err := postLoginFrom(hc, "http://"+addr, good); err != nil || code != 303 {
			t.Errorf("login with the typed password: %d %v %.200s", code, err, body)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		data := t.TempDir()
		s := passwd(t, data, good)
		s.expect("Repeat it: ")
		s.typeLine(good + "!")
		if code := s.wait(); code != 1 || !strings.Contains(s.output(), "the two passwords differ") {
			t.Fatalf("exit %d, terminal:\n%q", code, s.output())
		}
		if set, _ := webui.PasswordSet(data); set {
			t.Error("stored although the confirmation differed")
		}
	})
	t.Run("weak", func(t *testing.T) {
		data := t.TempDir()
		s := passwd(t, data, "password1234")
		if code := s.wait(); code != 1 || !strings.Contains(s.output(), "too common") || strings.Contains(s.output(), "Repeat it") {
			t.Fatalf("exit %d, terminal:\n%q", code, s.output())
		}
		if strings.Contains(s.output(), "password1234") {
			t.Errorf("the password was echoed:\n%q", s.output())
		}
	})
}
