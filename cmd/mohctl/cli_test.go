package main

import (
	"strings"
	"testing"
)

// TestHelpAndMisuse: help asked for is usage on stdout and exit 0; a
// mistake on the command line is the error and usage on stderr, exit 2,
// before any box is contacted (the inventory named does not exist).
func TestHelpAndMisuse(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the usage printed
	}{
		{[]string{"--help"}, "Commands:"},
		{[]string{"-h"}, "Commands:"},
		{[]string{"help"}, "Commands:"},
		{[]string{"push", "--help"}, "Usage: mohctl push <file>"},
		{[]string{"help", "push"}, "Usage: mohctl push <file>"},
		{[]string{"status", "-h"}, "--group=G"},
		{[]string{"playlist", "set", "--help"}, "Usage: mohctl playlist set <track> ..."},
		{[]string{"token", "rotate", "--help"}, "--scope=S"},
		{[]string{"--inventory", "/nonexistent", "volume", "--help"}, "Usage: mohctl volume <level>"},
	} {
		code, out, errOut := runCLI(t, tc.args...)
		if code != exitOK || !strings.Contains(out, tc.want) || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 0 and %q on stdout", tc.args, code, out, errOut, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string // in the error and usage on stderr
	}{
		{nil, "Usage: mohctl <command>"},
		{[]string{"frobnicate"}, "Usage: mohctl <command>"},
		{[]string{"--bogus", "status"}, "unknown flag --bogus"},
		{[]string{"push"}, "Usage: mohctl push <file>"},
		{[]string{"status", "-o", "yaml"}, "Usage: mohctl status"},
		{[]string{"status", "extra"}, "Usage: mohctl status"},
		{[]string{"token"}, "Usage: mohctl token"},
		{[]string{"token", "revoke"}, "Usage: mohctl token"},
		{[]string{"volume", "101"}, "volume must be an integer from 0 to 100"},
		{[]string{"volume", "loud"}, "Usage: mohctl volume <level>"},
		{[]string{"--via", "mqtts://broker.invalid:8883", "push", "x.mp3"}, "needs --url https://"},
		{[]string{"--timeout", "soon", "status"}, `--timeout: expected duration but got "soon"`},
	} {
		code, out, errOut := runCLI(t, append([]string{"--inventory", "/nonexistent/inventory.json"}, tc.args...)...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "Usage:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q with the usage on stderr", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, errOut := runCLI(t, "version")
	if code != exitOK || out != "mohctl "+version+"\n" || errOut != "" {
		t.Errorf("version: exit %d, %q %q", code, out, errOut)
	}
}

// TestFlagsAnywhere: flags may come before, between and after the
// arguments, as they could before mohctl had a CLI library.
func TestFlagsAnywhere(t *testing.T) {
	fx := newFleet(t, map[string][]string{"a": {"g"}})
	for _, args := range [][]string{
		{"--inventory", fx.inv, "volume", "30", "--group", "a"},
		{"volume", "--inventory", fx.inv, "-g", "a", "30"},
		{"volume", "30", "--inventory=" + fx.inv, "-o", "json"},
	} {
		if code, out, errOut := runCLI(t, args...); code != exitOK || !strings.Contains(out, "volume 30") {
			t.Errorf("%v: exit %d %s %s", args, code, out, errOut)
		}
	}
}
