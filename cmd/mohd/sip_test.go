package main

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// TestSIPSettingsChecked: the SIP flags and config keys are shown by
// `mohd run --help` and a bad value stops mohd at start with exit 2,
// naming the key.
func TestSIPSettingsChecked(t *testing.T) {
	help, _ := exec.Command(mohdBin, "run", "--help").CombinedOutput()
	for _, f := range []string{"-sip-allow", "-sip-max-calls", "-sip-rtp-ports", "-sip-rtp-timeout"} {
		if !strings.Contains(string(help), f) {
			t.Errorf("mohd run --help lacks %s", f)
		}
	}
	for _, tc := range []struct{ flag, conf, want string }{
		{flag: "--sip-allow=10.0.0.0/33", want: `--sip-allow "10.0.0.0/33": want comma-separated CIDRs`},
		{flag: "--sip-max-calls=0", want: `--sip-max-calls "0": want a number of calls from 1 to 5000`},
		{flag: "--sip-rtp-ports=20000-10000", want: `--sip-rtp-ports "20000-10000"`},
		{flag: "--sip-rtp-timeout=-1s", want: `--sip-rtp-timeout "-1s"`},
		{conf: "sip-allow = pbx.example\n", want: `:1: --sip-allow "pbx.example"`},
		{conf: "sip-max-calls = 9999\n", want: `:1: --sip-max-calls "9999"`},
	} {
		t.Run(tc.flag+tc.conf, func(t *testing.T) {
			root := t.TempDir()
			data := filepath.Join(root, "data")
			args := []string{"run", "--data", data, "--listen", testkit.FreeAddr(t), "--output", "null,sip:127.0.0.1:5999"}
			if tc.flag != "" {
				args = append(args, tc.flag)
			} else {
				args = append(args, confArgs(t, root, tc.conf)...)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, mohdBin, args...).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
				t.Fatalf("mohd %s: %v\n%s\nwant exit 2 and %q", strings.Join(args, " "), err, out, tc.want)
			}
		})
	}
}
