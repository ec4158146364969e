package logfwd

import (
	"strings"
	"testing"
	"time"
)

// TestFormat: header fields from a box are made valid RFC 5424 tokens,
// and text cannot forge a second line in the collector's files.
func TestFormat(t *testing.T) {
	h := newHeader("box 1\n", "", 42, "box 1", "", "v]1")
	got := string(h.format(Message{
		Time: time.Date(2026, 12, 1, 23, 40, 0, 123456000, time.FixedZone("x", 3600)), Severity: 99,
		MsgID: "", Text: "line one\nforged <13>1 line",
	}))
	want := `<29>1 2026-12-01T22:40:00.123456Z box_1_ - 42 - [moh@32473 device="box 1" version="v\]1"] line one\nforged <13>1 line`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if strings.Count(got, "\n") != 0 {
		t.Fatal("newline in message")
	}
}
