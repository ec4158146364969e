package sip

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestBatchSockSkipsRefused: one sendmmsg carries the whole batch; a
// message the kernel refuses (port 0) or that this socket's family
// cannot carry (IPv6 from an IPv4 socket) is skipped and the others
// still go, each with its own header and the shared payload.
func TestBatchSockSkipsRefused(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := newBatchSock(c)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	var rx [2]*net.UDPConn
	for i := range rx {
		if rx[i], err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")}); err != nil {
			t.Fatal(err)
		}
		defer rx[i].Close()
	}
	payload := bytes.Repeat([]byte{0x55}, 160)
	hdrs := [][]byte{[]byte("header-0...."), []byte("header-1...."), []byte("header-2....")}
	b.grow(3)
	if b.set(0, netip.MustParseAddrPort("[2001:db8::1]:4000"), hdrs[0], payload) {
		t.Error("an IPv6 destination accepted on an IPv4 socket")
	}
	b.set(0, rx[0].LocalAddr().(*net.UDPAddr).AddrPort(), hdrs[0], payload)
	b.set(1, netip.MustParseAddrPort("127.0.0.1:0"), hdrs[1], payload) // EINVAL
	b.set(2, rx[1].LocalAddr().(*net.UDPAddr).AddrPort(), hdrs[2], payload)
	var sent []int
	if failed := b.send(3, func(i int) { sent = append(sent, i) }); failed != 1 || len(sent) != 2 || sent[0] != 0 || sent[1] != 2 {
		t.Fatalf("sent %v, %d failed; want 0 and 2 sent, 1 failed", sent, failed)
	}
	for i, want := range [][]byte{hdrs[0], hdrs[2]} {
		buf := make([]byte, 1500)
		rx[i].SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := rx[i].ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("receiver %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], append(append([]byte(nil), want...), payload...)) {
			t.Errorf("receiver %d got %q", i, buf[:n])
		}
		if int(from.Port()) != b.port {
			t.Errorf("receiver %d: from port %d, want the socket's %d", i, from.Port(), b.port)
		}
	}
}
