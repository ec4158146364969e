package logfwd

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// TestPlainTransports: tcp:// frames by octet counting (RFC 6587 §3.4.1)
// and udp:// sends one message per datagram (RFC 5426), so a collector
// without TLS reads them as rsyslog reads the TLS ones.
func TestPlainTransports(t *testing.T) {
	run := func(t *testing.T, url string) {
		f, err := New(Options{URL: url, Hostname: "box-1", Device: "box-1", MinBackoff: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		testkit.Go(t, f.Run)
		f.Send(Message{Severity: SevNotice, MsgID: "admin", Text: "one"})
		f.Send(Message{Severity: SevNotice, MsgID: "admin", Text: "two words"})
	}
	check := func(t *testing.T, got []string) {
		t.Helper()
		if len(got) != 2 || !strings.HasPrefix(got[0], "<29>1 ") || !strings.HasSuffix(got[0], `[moh@32473 device="box-1"] one`) ||
			!strings.HasSuffix(got[1], " two words") {
			t.Fatalf("received %q", got)
		}
	}

	t.Run("tcp", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		run(t, "tcp://"+l.Addr().String())
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		var got []string
		for range 2 {
			n, err := r.ReadString(' ')
			if err != nil {
				t.Fatal(err)
			}
			size, err := strconv.Atoi(strings.TrimSpace(n))
			if err != nil {
				t.Fatalf("frame length %q: %v", n, err)
			}
			buf := make([]byte, size)
			if _, err := io.ReadFull(r, buf); err != nil {
				t.Fatal(err)
			}
			got = append(got, string(buf))
		}
		check(t, got)
	})
	t.Run("udp", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		run(t, "udp://"+pc.LocalAddr().String())
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got []string
		buf := make([]byte, 2048)
		for range 2 {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(buf[:n]))
		}
		check(t, got)
	})
}
