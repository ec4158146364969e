package webui

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/sys/unix"
)

// A stalled stream reader: a PBX (or the curl it runs) that stops reading
// its socket while its kernel keeps accepting. The box's writes block, and
// the per-write deadline fires, only once the peer's receive buffer is
// full; a Linux peer grows that buffer as unread data piles up (up to
// net.ipv4.tcp_rmem's maximum), so that can take minutes (268 s of slin
// measured on loopback). What the box sees meanwhile is the window the
// peer advertises (TCP_INFO): while the peer's kernel holds more and more
// unread data in a buffer it does not grow, the window shrinks by what
// arrives, second after second. A reader that reads keeps its window
// steady or grows it, even one that runs a constant backlog (it reads as
// fast as data comes, just late), or one that reads in bursts. A peer
// kernel that grows its buffer as fast as the data comes keeps its window
// steady too and shows nothing; that one is cut off by the write deadline
// once its buffer is full, as before.
const (
	// streamStallTimeout is how long the peer's window may keep shrinking,
	// every streamStallStep without a pause, before the listener counts
	// as stalled and is cut off.
	streamStallTimeout = 10 * time.Second
	// streamStallStep is how often the window is read (one getsockopt)
	// and compared with the reading before. A second of the slowest
	// stream (MP3, 4 kB/s) is several steps of the window's granularity.
	streamStallStep = time.Second
)

// stallWatch judges one stream connection by its peer's advertised
// window. It is used from the handler's goroutine only.
type stallWatch struct {
	raw interface {
		Control(func(fd uintptr)) error
	}
	next   time.Time // next look
	seen   bool      // last holds a reading
	last   uint32    // window at the last look
	streak int       // looks in a row at which the window had shrunk
}

// newStallWatch watches r's connection; nil if it is not TCP, which
// leaves only the write deadline.
func newStallWatch(r *http.Request) *stallWatch {
	tc, ok := r.Context().Value(connCtxKey{}).(*trackedConn)
	if !ok {
		return nil
	}
	tcp, ok := tc.Conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	return &stallWatch{raw: raw}
}

// window is the peer's advertised receive window in bytes, ok false if
// the kernel does not say.
func (sw *stallWatch) window() (w uint32, ok bool) {
	var info *unix.TCPInfo
	var gerr error
	if err := sw.raw.Control(func(fd uintptr) {
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || gerr != nil || info == nil {
		return 0, false
	}
	return info.Snd_wnd, true
}

// stalled reports whether the peer has stopped reading, looking at most
// every streamStallStep.
func (sw *stallWatch) stalled(now time.Time) bool {
	if sw == nil || now.Before(sw.next) {
		return false
	}
	sw.next = now.Add(streamStallStep)
	w, ok := sw.window()
	if !ok {
		sw.seen = false
		return false
	}
	return sw.observe(w)
}

// observe takes one window reading, streamStallStep after the one
// before; it reports a stall.
func (sw *stallWatch) observe(w uint32) bool {
	if sw.seen && w < sw.last {
		sw.streak++
	} else {
		// steady or grown: the peer read what came
		sw.streak = 0
	}
	sw.seen, sw.last = true, w
	return time.Duration(sw.streak)*streamStallStep >= streamStallTimeout
}
