package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mohproject/moh/internal/logfwd"
	"github.com/mohproject/moh/player"
)

// TestSyslogSettings: bad syslog values stop mohd at checkRun, before it
// touches the data dir, naming the key, the value and what is allowed;
// good ones pass, from flags or the config file.
func TestSyslogSettings(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args    []string
		conf    string
		wantErr string
	}{
		{args: []string{"--syslog", "tls://logs.example:6514"}},
		{args: []string{"--syslog", "udp://10.0.0.5", "--syslog-level", "ERROR", "--syslog-buffer", "10"}},
		{conf: "syslog = tcp://[::1]:1514\nsyslog-buffer = 100000\n"},
		{args: []string{"--syslog", "syslog://logs.example"}, wantErr: `--syslog "syslog://logs.example": want tls://HOST`},
		{args: []string{"--syslog", "tls://logs.example:99999"}, wantErr: `--syslog "tls://logs.example:99999"`},
		{args: []string{"--syslog", "tls://logs.example", "--syslog-level", "chatty"}, wantErr: `--syslog-level "chatty": want debug`},
		{args: []string{"--syslog", "tls://logs.example", "--syslog-buffer", "9"}, wantErr: `--syslog-buffer "9": want 10 to 100000`},
		{conf: "syslog = tls://h\nsyslog-buffer = 100001\n", wantErr: `mohd.conf:2: --syslog-buffer "100001"`},
		// Without --syslog the other keys are not looked at.
		{args: []string{"--syslog-level", "chatty"}},
	} {
		t.Run(strings.Join(tc.args, " ")+tc.conf, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "mohd.conf")
			if err := os.WriteFile(p, []byte(tc.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := parseRunConfig(append([]string{"--config", p, "--data", dir}, tc.args...))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestEventMessage: an event's kind is the MSGID, its class the
// severity, and its fault, rung and recovery time ride in structured
// data.
func TestEventMessage(t *testing.T) {
	m := eventMessage(player.Event{Kind: "recovered", Fault: player.FaultStalled, Rung: "replay", RecoveryMS: 1200, Message: "audio back"})
	if m.MsgID != "recovered" || m.Severity != logfwd.SevNotice || m.Text != "audio back" ||
		fmt.Sprint(m.Event) != fmt.Sprint([]logfwd.Param{{Name: "fault", Value: string(player.FaultStalled)}, {Name: "rung", Value: "replay"}, {Name: "recovery_ms", Value: "1200"}}) {
		t.Errorf("recovered: %+v", m)
	}
	for kind, sev := range map[string]int{"fault": logfwd.SevError, "skip": logfwd.SevWarning, "security": logfwd.SevWarning,
		"library": logfwd.SevInfo, "admin": logfwd.SevNotice} {
		if m := eventMessage(player.Event{Kind: kind}); m.Severity != sev || len(m.Event) != 0 {
			t.Errorf("%s: severity %d params %v, want %d and none", kind, m.Severity, m.Event, sev)
		}
	}
}
