package player

// This file plays a track from its PCM cache file (pcm_cache.go): the
// samples are already exactly what Gapless would decode, so a pass is
// large reads from the page cache and no per-sample work.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// pcmReadSize is one read from the cache file: about 370 ms of audio, so
// the audio goroutine makes three reads a second, all served by the page
// cache once the loop has played once.
const pcmReadSize = 64 << 10

// trackSource is what the audio loop reads a track from: the live
// decoder (*Gapless) or its cache file (*pcmSource).
type trackSource interface {
	Read(p []byte) (int, error)
	Info() MP3Info
	Position() time.Duration
	Truncated() bool
}

// pcmSource streams one cache file. Its buffer is allocated once per
// track, so steady playback allocates nothing.
type pcmSource struct {
	f      *os.File
	info   MP3Info
	off    int64 // file offset of the next read
	left   int64 // sample bytes not yet read from the file
	pos    int64 // frames returned
	buf    []byte
	r, w   int // unread bytes of buf
	cutoff bool
}

func newPCMSource(f *os.File, frames int64, info MP3Info) *pcmSource {
	return &pcmSource{f: f, info: info, off: pcmHeaderSize, left: frames * BytesPerFrame, buf: *pcmBuffers.Get().(*[]byte)}
}

// pcmBuffers keeps the read buffer from one track to the next, so a
// track change does not leave 64 KiB of garbage behind.
var pcmBuffers = sync.Pool{New: func() any { b := make([]byte, pcmReadSize); return &b }}

// release hands the buffer back; the source must not be read again.
func (s *pcmSource) release() {
	if s.buf != nil {
		b := s.buf
		pcmBuffers.Put(&b)
		s.buf, s.r, s.w, s.left = nil, 0, 0, 0
	}
}

// Info is the parsed header of the MP3 the cache was made from.
func (s *pcmSource) Info() MP3Info { return s.info }

// Position is how much audio Read has returned.
func (s *pcmSource) Position() time.Duration {
	return time.Duration(s.pos) * time.Second / SampleRate
}

// Truncated reports whether the cache file ended before its header said
// (it was cut while playing): what was there has been played.
func (s *pcmSource) Truncated() bool { return s.cutoff }

// Read fills p with whole frames; io.EOF after the last one.
func (s *pcmSource) Read(p []byte) (int, error) {
	p = p[:len(p)&^(BytesPerFrame-1)]
	if len(p) == 0 {
		return 0, errors.New("pcm read: buffer smaller than one frame")
	}
	if s.r == s.w {
		if s.left == 0 {
			return 0, io.EOF
		}
		n, err := s.f.ReadAt(s.buf[:min(int64(len(s.buf)), s.left)], s.off)
		n &^= BytesPerFrame - 1
		s.off += int64(n)
		s.left -= int64(n)
		s.r, s.w = 0, n
		if n == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				s.cutoff = true
				return 0, io.EOF
			}
			return 0, fmt.Errorf("read cache at %s: %w", s.Position().Round(time.Millisecond), err)
		}
	}
	n := copy(p, s.buf[s.r:s.w])
	s.r += n
	s.pos += int64(n / BytesPerFrame)
	return n, nil
}
