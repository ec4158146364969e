package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	tests := []struct {
		name    string
		conf    string
		args    []string
		check   func(c *config) string
		wantErr string
	}{
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := write(tc.conf)
			var c config
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			runFlags(fs, &c)
			err := parseFlags(fs, &c, append([]string{"--config", p, "--data", dir}, tc.args...))
			if err == nil {
				err = c.finish()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(&c); msg != "" {
				t.Fatal(msg)
			}
			if c.Music != filepath.Join(dir, "library") {
				t.Fatalf("music default = %s", c.Music)
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
