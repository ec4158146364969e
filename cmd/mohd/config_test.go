package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
	"github.com/mohproject/moh/uploads"
)

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "mohd.conf")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	type configCase struct {
		name    string
		conf    string
		args    []string
		check   func(c *config) string
		wantErr string
	}
	tests := []configCase{
		{
			name: "file sets keys",
			conf: "# moh\nbackend = mpd\noutput = \"file:/tmp/x.raw\"\nlisten=:9000\n",
			check: func(c *config) string {
				if c.Backend != "mpd" || c.Output != "file:/tmp/x.raw" || c.Listen != ":9000" {
					return "got " + c.Backend + " " + c.Output + " " + c.Listen
				}
				return ""
			},
		},
		{
			name:    "flags win over the file",
			conf:    "backend = mpd\nvolume-ignored-comment = x\n",
			args:    []string{"--backend", "direct"},
			wantErr: `unknown key "volume-ignored-comment"`,
		},
		{
			name: "flag wins",
			conf: "backend = mpd\noutput = null\n",
			args: []string{"--backend", "direct"},
			check: func(c *config) string {
				if c.Backend != "direct" || c.Output != "null" {
					return "got " + c.Backend + " " + c.Output
				}
				return ""
			},
		},
		{name: "bad line", conf: "backend mpd\n", wantErr: "mohd.conf:1: want `key = value`"},
		{name: "bad value", conf: "\nreboot = maybe\n", wantErr: "mohd.conf:2: reboot"},
		{name: "no nesting", conf: "config = /etc/other\n", wantErr: "cannot include"},
		{name: "bad backend", conf: "backend = vlc\n", wantErr: `--backend "vlc"`},
		{
			name: "inline comments",
			conf: "backend = mpd   # MPD, not direct\nmpd-bin = /opt/mpd#2/mpd\ngroups = # none yet\nlog-level = debug\t# while we look\n",
			check: func(c *config) string {
				if c.Backend != "mpd" || c.MPDBin != "/opt/mpd#2/mpd" || c.Groups != "" || c.level != slog.LevelDebug {
					return fmt.Sprintf("got backend %q mpd-bin %q groups %q level %v", c.Backend, c.MPDBin, c.Groups, c.level)
				}
				return ""
			},
		},
		{
			name: "quotes keep # and spaces",
			conf: "output = \"file:/run/moh/a # b.raw\"  # the PBX reads this\ndevice-id = \"#7\"\n",
			check: func(c *config) string {
				if c.Output != "file:/run/moh/a # b.raw" || c.DeviceID != "#7" {
					return fmt.Sprintf("got output %q device-id %q", c.Output, c.DeviceID)
				}
				return ""
			},
		},
		{name: "unclosed quote", conf: "output = \"file:/x\n", wantErr: "mohd.conf:1: output: the value's quote is not closed"},
		{name: "text after the quote", conf: "output = \"null\" null\n", wantErr: `mohd.conf:1: output: "null" after the closing quote`},
		{
			name: "edges of every range",
			conf: "target-lufs = -70\nmax-upload-mb = 10240\nmax-minutes = 1440\nmin-free-mb = 0\nlog-level = ERROR\n",
			check: func(c *config) string {
				if c.MaxUploadMB != 10240 || c.MaxMinutes != 1440 || c.MinFreeMB != 0 || c.level != slog.LevelError {
					return fmt.Sprintf("got %+v", *c)
				}
				return ""
			},
		},
		{
			name:  "other edges",
			args:  []string{"--target-lufs", "0", "--max-upload-mb", "1", "--max-minutes", "1", "--min-free-mb", "1048576"},
			check: func(c *config) string { return "" },
		},
		{name: "target off", args: []string{"--target-lufs", "OFF"}, check: func(c *config) string { return "" }},
	}
	for _, bad := range badValues {
		if bad.flag == "" {
			tests = append(tests, configCase{name: "file " + bad.key + " " + bad.value, conf: "\n" + bad.key + " = " + bad.value + " # the admin's note\n", wantErr: "mohd.conf:2: " + bad.want})
			continue
		}
		tests = append(tests, configCase{name: "flag " + bad.key + " " + bad.value, args: []string{bad.flag, bad.value}, wantErr: bad.want})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := write(tc.conf)
			c, err := parseRunConfig(append([]string{"--config", p, "--data", dir}, tc.args...))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(c); msg != "" {
				t.Fatal(msg)
			}
			if c.Music != filepath.Join(dir, "library") {
				t.Fatalf("music default = %s", c.Music)
			}
		})
	}
}

// badValues are settings mohd must refuse at start; want is the message:
// the key, the value as given and what is allowed. An empty flag means the
// case is given in the config file, the rest as flags.
// confArgs writes conf as root/mohd.conf and returns the flags that
// point mohd at it.
func confArgs(t *testing.T, root, conf string) []string {
	t.Helper()
	p := filepath.Join(root, "mohd.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", p}
}

// parseRunConfig is what `mohd run` does with its command line and
// config file before it starts anything: parse, finish, check.
func parseRunConfig(args []string) (*config, error) {
	var c config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	runFlags(fs, &c)
	err := parseFlags(fs, &c, args)
	if err == nil {
		err = c.finish()
	}
	if err == nil {
		err = c.checkRun()
	}
	return &c, err
}

var badValues = []struct {
	flag, key, value, want string
}{
	{"--target-lufs", "target-lufs", "NaN", `--target-lufs "NaN": want a loudness from -70 to 0 LUFS, e.g. -18, or off`},
	{"--target-lufs", "target-lufs", "-inf", `--target-lufs "-inf": want a loudness from -70 to 0 LUFS`},
	{"--target-lufs", "target-lufs", "-70.5", `--target-lufs "-70.5": want a loudness from -70 to 0 LUFS`},
	{"--target-lufs", "target-lufs", "3", `--target-lufs "3": want a loudness from -70 to 0 LUFS`},
	{"--target-lufs", "target-lufs", "loud", `--target-lufs "loud": want a loudness from -70 to 0 LUFS`},
	{"", "target-lufs", "nan", `--target-lufs "nan": want a loudness from -70 to 0 LUFS`},
	{"--max-upload-mb", "max-upload-mb", "0", `--max-upload-mb "0": want a size from 1 to 10240 MiB`},
	{"--max-upload-mb", "max-upload-mb", "-5", `--max-upload-mb "-5": want a size from 1 to 10240 MiB`},
	{"--max-upload-mb", "max-upload-mb", "9000000000000", `--max-upload-mb "9000000000000": want a size from 1 to 10240 MiB`},
	{"", "max-upload-mb", "10241", `--max-upload-mb "10241": want a size from 1 to 10240 MiB`},
	{"--max-minutes", "max-minutes", "0", `--max-minutes "0": want a length from 1 to 1440 minutes`},
	{"--max-minutes", "max-minutes", "1441", `--max-minutes "1441": want a length from 1 to 1440 minutes`},
	{"", "max-minutes", "-1", `--max-minutes "-1": want a length from 1 to 1440 minutes`},
	{"--min-free-mb", "min-free-mb", "-1", `--min-free-mb "-1": want a size from 0 to 1048576 MiB (0: refuse only uploads that do not fit)`},
	{"", "min-free-mb", "1048577", `--min-free-mb "1048577": want a size from 0 to 1048576 MiB`},
	{"--pcm-cache-budget", "pcm-cache-budget", "-2", `--pcm-cache-budget "-2": want a size from 0 to 1048576 MiB (0: a quarter of the free space), or -1 for off`},
	{"--log-level", "log-level", "verbose", `--log-level "verbose": want debug, info, warn or error`},
	{"", "log-level", "warning", `--log-level "warning": want debug, info, warn or error`},
	{"--log-format", "log-format", "xml", `--log-format "xml": want text or json`},
	{"--output", "output", "speaker", `--output "speaker": unknown kind "speaker"`},
}

// TestMinFreeZeroMeansNoMargin: --min-free-mb 0 keeps the guard with no
// margin (the library read 0 as its 100 MiB default), and the flag's MiB
// reach the library as bytes.
func TestMinFreeZeroMeansNoMargin(t *testing.T) {
	for _, tc := range []struct {
		minFreeMB   int64
		free        uint64
		wantWarning bool
	}{
		{0, 50 << 20, false},
		{0, 1 << 20, false},
		{0, 0, true}, // nothing fits
		{200, 300 << 20, true},
		{200, 500 << 20, false},
	} {
		t.Run(fmt.Sprintf("%d MiB margin, %d MiB free", tc.minFreeMB, tc.free>>20), func(t *testing.T) {
			dir := t.TempDir()
			// Every other setting at its default, as `mohd run` starts.
			var c config
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			runFlags(fs, &c)
			if err := fs.Parse(nil); err != nil {
				t.Fatal(err)
			}
			c.Data, c.Music, c.Output, c.MinFreeMB = dir, filepath.Join(dir, "library"), "null", tc.minFreeMB
			o, err := libraryOptions(&c, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			o.Statfs = func(string) (uint64, uint64, error) { return tc.free, 1 << 40, nil }
			lib, err := uploads.Open(o)
			if err != nil {
				t.Fatal(err)
			}
			if d := lib.Disk(); d.Warning != tc.wantWarning {
				t.Fatalf("disk %+v: warning %v, want %v", d, d.Warning, tc.wantWarning)
			}
		})
	}
}

// TestBadConfigRefusedAtStart runs the real binary with each bad value, as
// a flag and from a config file: mohd must exit 2 at once, say the key, the
// value and what is allowed, and leave the data dir uncreated. A mistyped
// log level is refused by every subcommand (by `mohd check` as UNKNOWN).
func TestBadConfigRefusedAtStart(t *testing.T) {
	type run struct {
		name     string
		args     []string
		conf     string
		wantCode int
		want     string
	}
	var runs []run
	for _, bad := range badValues {
		if bad.flag != "" {
			runs = append(runs, run{name: "flag " + bad.key + " " + bad.value, args: []string{"run", bad.flag, bad.value}, wantCode: 2, want: bad.want})
		} else {
			runs = append(runs, run{name: "file " + bad.key + " " + bad.value, args: []string{"run"}, conf: "# moh\n" + bad.key + " = " + bad.value + "  # set by hand\n", wantCode: 2, want: ":2: " + bad.want})
		}
	}
	runs = append(runs,
		run{name: "token create, bad level", args: []string{"token", "create", "--scope", "read", "--log-level", "loud"}, wantCode: 2, want: `--log-level "loud": want debug, info, warn or error`},
		run{name: "passwd, bad level in file", args: []string{"passwd"}, conf: "log-level = chatty\n", wantCode: 2, want: `:1: --log-level "chatty"`},
		run{name: "check, bad level", args: []string{"check", "--log-level", "loud"}, wantCode: 3, want: `MOH UNKNOWN - --log-level "loud"`},
	)
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			root := t.TempDir()
			data := filepath.Join(root, "data")
			args := append(append([]string{}, r.args...), "--data", data)
			if r.args[0] == "run" {
				// A bad value given as a flag comes after these, so it wins.
				args = append([]string{"run", "--data", data, "--listen", testkit.FreeAddr(t), "--output", "null"}, r.args[1:]...)
			}
			if r.conf != "" {
				args = append(args, confArgs(t, root, r.conf)...)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, mohdBin, args...)
			cmd.Stdin = strings.NewReader("correct horse battery staple\n")
			out, err := cmd.CombinedOutput()
			code := -1
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err == nil {
				code = 0
			}
			if code != r.wantCode || !strings.Contains(string(out), r.want) {
				t.Fatalf("mohd %s: exit %d (%v), output:\n%s\nwant exit %d and %q", strings.Join(args, " "), code, err, out, r.wantCode, r.want)
			}
			if _, err := os.Lstat(data); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the data dir was touched before the value was refused: %v", err)
			}
		})
	}
}

func TestSubcommandsShareDataDir(t *testing.T) {
	data := t.TempDir()
	if _, err := mohdCmd(t, "correct horse battery\n", "passwd", "--data", data); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "admin-password")); err != nil {
		t.Fatalf("passwd wrote nothing to the data dir: %v", err)
	}
	if _, err := mohdCmd(t, "short\n", "passwd", "--data", data); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("short password accepted: %v", err)
	}
	tok, err := mohdCmd(t, "", "token", "create", "--scope", "read", "--name", "nagios", "--data", data)
	if err != nil || len(strings.TrimSpace(tok)) < 20 {
		t.Fatalf("token create: %q %v", tok, err)
	}
	list, err := mohdCmd(t, "", "token", "list", "--data", data)
	if err != nil || !strings.Contains(list, "nagios") || strings.Contains(list, strings.TrimSpace(tok)) {
		t.Fatalf("token list must name the token and never show its secret: %q %v", list, err)
	}
	if _, err := mohdCmd(t, "", "token", "create", "--scope", "root", "--data", data); err == nil {
		t.Fatal("unknown scope accepted")
	}
	if out, err := mohdCmd(t, "", "version"); err != nil || !strings.HasPrefix(out, "mohd ") {
		t.Fatalf("version: %q %v", out, err)
	}
}
