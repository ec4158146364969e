package webui

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mohproject/moh/internal/phone"
	"github.com/mohproject/moh/internal/status"
)

// HTTP streams of the telephone signal for IP phone systems:
// GET /api/v1/stream/{mp3|ulaw|alaw|slin}. Every listener gets its own
// hub subscription (mp3 listeners share one lame process), so a PBX that
// stops reading loses its stream and nobody else notices.
const (
	// streamWriteDeadline is how long one write may block before the
	// listener counts as stalled and is cut off.
	streamWriteDeadline = 2 * time.Second
	// streamQueue is a raw listener's queue in 20 ms frames (2 s): full
	// means the writes have been blocked that long.
	streamQueue = 100
	// mp3Queue is an MP3 listener's queue in 72 ms frames (about 2 s).
	mp3Queue = 28
	// streamSndBuf is the kernel send buffer of a stream connection.
	// Linux would grow it to megabytes (minutes of 8 kHz audio), hiding
	// a stalled reader for that long; a few seconds' worth still rides
	// out a short network hiccup. The kernel doubles the value.
	streamSndBuf = 8 << 10
	// defaultMaxListeners caps the streams of one box over all formats.
	defaultMaxListeners = 64
)

// streamFormat is one raw format: its content type and how a frame is
// written in it.
type streamFormat struct {
	ctype string
	frame func(f *phone.Frame, buf []byte) []byte
}

var streamFormats = map[string]streamFormat{
	"ulaw": {"audio/basic", func(f *phone.Frame, buf []byte) []byte { return append(buf, f.ULaw[:]...) }},
	"alaw": {"audio/x-alaw-basic", func(f *phone.Frame, buf []byte) []byte { return append(buf, f.ALaw[:]...) }},
	// audio/L16 (RFC 2586) is big-endian; slin is little-endian, as
	// Asterisk's mode=custom reads it, so it gets a type of its own
	// rather than a wrong standard one.
	"slin": {"audio/x-slin", func(f *phone.Frame, buf []byte) []byte {
		for _, v := range f.PCM {
			buf = binary.LittleEndian.AppendUint16(buf, uint16(v))
		}
		return buf
	}},
}

// streamNames lists the formats in a stable order (status, metrics).
var streamNames = []string{"mp3", "ulaw", "alaw", "slin"}

// streamSet is the box's listeners.
type streamSet struct {
	hub *phone.Hub
	mp3 *phone.MP3Encoder
	max int

	mu        sync.Mutex
	total     int
	listeners map[string]int
	dropped   map[string]uint64
}

func newStreamSet(o Options) *streamSet {
	st := &streamSet{hub: o.Streams, max: o.MaxStreamListeners, listeners: map[string]int{}, dropped: map[string]uint64{}}
	if st.max <= 0 {
		st.max = defaultMaxListeners
	}
	if st.hub != nil {
		st.mp3 = phone.NewMP3Encoder(st.hub, phone.MP3Options{Lame: o.Lame, Logger: o.Logger})
	}
	return st
}

// acquire takes a listener slot for format, or reports the box full.
func (st *streamSet) acquire(format string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.total >= st.max {
		return false
	}
	st.total++
	st.listeners[format]++
	return true
}

func (st *streamSet) release(format string, dropped bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.total--
	st.listeners[format]--
	if dropped {
		st.dropped[format]++
	}
}

// status is the streams' part of the status document.
func (st *streamSet) status() status.Streams {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := status.Streams{Listeners: map[string]int{}, Dropped: map[string]uint64{}, MaxListeners: st.max, MP3Encoder: "stopped"}
	for _, f := range streamNames {
		out.Listeners[f] = st.listeners[f]
		out.Dropped[f] = st.dropped[f]
	}
	if st.mp3 != nil && st.mp3.Running() {
		out.MP3Encoder = "running"
	}
	return out
}

// StreamStats reports the HTTP streams' listeners and drops, for
// /metrics; ok is false when the box serves no streams (MPD backend).
func (s *Server) StreamStats() (st status.Streams, ok bool) {
	if s.streams == nil || s.streams.hub == nil {
		return status.Streams{}, false
	}
	return s.streams.status(), true
}

var (
	errStreamFormat = errorf(http.StatusNotFound, "unknown_format", "stream formats are mp3, ulaw, alaw and slin")
	errNoStream     = errorf(http.StatusServiceUnavailable, "no_stream", "this box makes no telephone signal: HTTP streams need --backend direct")
	errStreamsFull  = errorf(http.StatusServiceUnavailable, "too_many_listeners", "the box serves as many streams as it may; try again later")
	errNoMP3        = errorf(http.StatusServiceUnavailable, "mp3_unavailable", "the MP3 encoder (lame) could not be started; the raw formats still work")
	// errPeerStalled ends a stream whose reader stopped reading
	// (api_stream_stall.go); it is never sent, the stream just ends.
	errPeerStalled = errors.New("stream reader stopped reading")
)

// streamAuth guards the streams: a read token as Bearer, or as the
// password of Basic auth with any user name, so a PBX's stream URL can
// carry it (http://moh:TOKEN@box:8080/...); or the page's session. A
// refusal challenges for Basic, which PBXs and players understand.
func (s *Server) streamAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pw, ok := r.BasicAuth(); ok {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+pw)
		}
		p, ok := s.admit(w, r, `Basic realm="moh"`)
		if !ok {
			return
		}
		// The page's session (its "Hear as callers will") listens from
		// this origin only. SameSite=Strict already keeps the cookie off
		// other sites' requests; a sibling host under the same domain
		// (same-site, not same-origin) must not embed the stream either.
		if p.session != nil && foreignFetch(r) {
			s.writeError(w, r, errCrossSite)
			return
		}
		s.serveAs(next, w, r, p, ScopeRead)
	})
}

// foreignFetch reports whether a browser says r comes from a page of
// another origin. Sec-Fetch-Site is set by browsers and cannot be forged
// by a page; a request without it is not from a browser (a PBX, curl)
// or from an old one, whose cookie SameSite=Strict already guards.
func foreignFetch(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return false
	}
	return true
}

// stream is GET /api/v1/stream/{format}.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	format := chi.URLParam(r, "format")
	raw, isRaw := streamFormats[format]
	if !isRaw && format != "mp3" {
		s.writeError(w, r, errStreamFormat)
		return
	}
	st := s.streams
	if st == nil || st.hub == nil {
		s.writeError(w, r, errNoStream)
		return
	}
	if !st.acquire(format) {
		w.Header().Set("Retry-After", "30")
		s.writeError(w, r, errStreamsFull)
		return
	}
	dropped := false
	defer func() { st.release(format, dropped) }()

	var pumpStream func(write func([]byte) error) (dropped bool)
	if isRaw {
		sub := st.hub.Subscribe("http-"+format, streamQueue)
		defer sub.Close()
		var buf []byte
		pumpStream = func(write func([]byte) error) bool {
			return pump(r.Context(), sub.C(), write, func(f *phone.Frame) ([]byte, bool) {
				if sub.Dropped() > 0 {
					// a lost frame is a gap the PBX would play: end
					// the stream, the PBX reconnects to a whole one
					return nil, false
				}
				buf = raw.frame(f, buf[:0])
				return buf, true
			})
		}
		w.Header().Set("Content-Type", raw.ctype)
	} else {
		sub, err := st.mp3.Subscribe(mp3Queue)
		if err != nil {
			s.log.Warn("mp3 stream refused", "err", err)
			s.writeError(w, r, errNoMP3)
			return
		}
		defer sub.Close()
		pumpStream = func(write func([]byte) error) bool {
			pump(r.Context(), sub.C(), write, func(b []byte) ([]byte, bool) { return b, true })
			return sub.Dropped()
		}
		w.Header().Set("Content-Type", "audio/mpeg")
		w.Header().Set("icy-br", "32")
	}
	tuneStreamConn(r)
	rc := http.NewResponseController(w)
	// The server's 30 s WriteTimeout would cut every stream: each write
	// sets its own deadline instead. net/http already clears the read
	// deadline for its background read while a handler runs (so the
	// 30 s ReadTimeout does not end the stream either; measured: 45 s
	// streams whole either way); it is cleared here too so the stream
	// does not rest on that detail. A listener that leaves is still
	// seen at once (the background read gets EOF).
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(streamWriteDeadline))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("icy-name", "moh music on hold")
	// A plain body closed at the end, as Icecast servers send it: some
	// stream clients do not expect chunked encoding on a live stream.
	w.Header().Set("Transfer-Encoding", "identity")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	stalled := false
	sw := newStallWatch(r)
	dropped = pumpStream(func(b []byte) error {
		now := time.Now()
		if sw.stalled(now) {
			// the peer's kernel still accepts, but nobody reads there
			s.log.Info("stream listener stopped reading: cut off", "format", format, "remote", r.RemoteAddr)
			stalled = true
			return errPeerStalled
		}
		_ = rc.SetWriteDeadline(now.Add(streamWriteDeadline))
		_, err := w.Write(b)
		if err == nil {
			err = rc.Flush()
		}
		// a deadline missed is a stalled reader; any other error is a
		// listener that left
		stalled = errors.Is(err, os.ErrDeadlineExceeded)
		return err
	})
	dropped = dropped || stalled
}

// pump writes what arrives on c, encoded, until the request ends, c
// closes, encode refuses (false) or a write fails. It reports whether
// the source ended it (c closed or encode refused).
func pump[T any](ctx context.Context, c <-chan T, write func([]byte) error, encode func(T) ([]byte, bool)) (sourceEnded bool) {
	for {
		select {
		case <-ctx.Done():
			return false
		case v, ok := <-c:
			if !ok {
				return true
			}
			b, ok := encode(v)
			if !ok {
				return true
			}
			if write(b) != nil {
				return false
			}
		}
	}
}

// tuneStreamConn shrinks the send buffer of r's connection (see
// streamSndBuf). The connection ends with the stream (Transfer-Encoding
// identity), so no later request inherits it.
func tuneStreamConn(r *http.Request) {
	tc, ok := r.Context().Value(connCtxKey{}).(*trackedConn)
	if !ok {
		return
	}
	if tcp, ok := tc.Conn.(*net.TCPConn); ok {
		_ = tcp.SetWriteBuffer(streamSndBuf)
	}
}
