package logfwdtest

import "testing"

// MustStart is Start for a test: rsyslogd is stopped when the test ends,
// and a failing test logs what it printed.
func MustStart(t testing.TB, dir, ca, cert, key string) *Rsyslog {
	t.Helper()
	r, err := Start(dir, ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("rsyslogd:\n%s", r.Log())
		}
	})
	return r
}

// WithMsgID is the lines whose RFC 5424 MSGID is msgid.
func WithMsgID(lines []Line, msgid string) []Line {
	var out []Line
	for _, l := range lines {
		if l.MsgID == msgid {
			out = append(out, l)
		}
	}
	return out
}
