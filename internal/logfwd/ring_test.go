package logfwd

import (
	"fmt"
	"testing"
)

// TestRingDropWhileWriting: a full ring that drops the message being
// written must not then remove the next one, which was never sent.
func TestRingDropWhileWriting(t *testing.T) {
	f, err := New(Options{URL: "tcp://127.0.0.1:1", Ring: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		f.Send(Message{Text: fmt.Sprint(i)})
	}
	m, noticed, seq, ok := f.next()
	if !ok || noticed != 0 || m.Text != "0" {
		t.Fatalf("next = %q %d %v", m.Text, noticed, ok)
	}
	f.Send(Message{Text: "3"}) // drops "0", which is on the wire
	f.done(noticed, seq)
	var got []string
	for {
		m, noticed, seq, ok := f.next()
		if !ok {
			break
		}
		got = append(got, m.Text)
		f.done(noticed, seq)
	}
	want := []string{"1 messages dropped while the collector was unreachable", "1", "2", "3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
}

// TestNewRefuses: only the three documented transports, with a host.
func TestNewRefuses(t *testing.T) {
	for _, u := range []string{"", "syslog://h:514", "tls://", "tls://h:0", "tls://h:99999", "udp://h/path", "tcp://u@h:514", "tls://h:6514?x=1"} {
		if _, err := New(Options{URL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	for _, u := range []string{"tls://logs.example", "tcp://10.0.0.1:1514", "udp://[::1]:514"} {
		if _, err := New(Options{URL: u}); err != nil {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}

// BenchmarkSendFullRing: the cost a log call or an event pays to queue
// while the collector is away and the ring is full (the worst case: each
// Send also drops the oldest).
func BenchmarkSendFullRing(b *testing.B) {
	f, err := New(Options{URL: "tcp://127.0.0.1:1"})
	if err != nil {
		b.Fatal(err)
	}
	m := Message{Severity: SevWarning, MsgID: "log", Text: "output stalled component=watchdog"}
	for range DefaultRing {
		f.Send(m)
	}
	b.ReportAllocs()
	for b.Loop() {
		f.Send(m)
	}
}
