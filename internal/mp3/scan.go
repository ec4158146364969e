package mp3

// This file finds a stream's first frame: a header that the frames after
// it confirm, so that a stray 0xFFE in a tag's padding or in random bytes
// is not taken for audio.

import (
	"errors"
	"fmt"
	"io"
)

// EndRule says what a search makes of a candidate frame when the file ends
// before the frames that would confirm it.
type EndRule uint8

const (
	// EndAtStart accepts such a candidate only where audio must start
	// (right after the tags), so a truncated one-frame file is still
	// recognised while a sync word near the end of random bytes is not.
	EndAtStart EndRule = iota
	// EndWholeFrame accepts it when at least one frame confirmed it or
	// when the candidate frame itself ends within the file.
	EndWholeFrame
)

// Search is how a caller looks for the first frame: the rules are the
// caller's (what its decoder accepts, how sure it must be), the scan is
// this package's.
type Search struct {
	// Window is how many bytes after the start a first header may begin
	// at.
	Window int64
	// Follow is how many further frames of the same stream must follow
	// the candidate, each where the one before it ends.
	Follow int
	// TAGConfirms lets an ID3v1 tag ("TAG") where the next frame would
	// start confirm the candidate.
	TAGConfirms bool
	// FreeFormat lets free-format headers (bitrate index 0) be candidates:
	// the next free-format header of the same stream within MaxFrameBytes
	// confirms one (and gives the frame length the further Follow frames
	// are checked at). Otherwise they are not frames at all.
	FreeFormat bool
	// Parts lets Walk follow a stream that changes sample rate, version,
	// layer or channel count (two files joined with cat): a confirmed
	// frame of the new stream starts a new Part instead of being junk.
	Parts bool
	// AnyEmphasis lets the reserved emphasis value through, as mpg123
	// does; go-mp3 refuses it.
	AnyEmphasis bool
	// End is what to make of a candidate the end of the file leaves
	// unconfirmed.
	End EndRule
}

// scanChunk is the read size while scanning.
const scanChunk = 16 << 10

// header parses b under the search's rules.
func (s Search) header(b []byte) (FrameHeader, bool) {
	h, err := parseHeader(b, s.AnyEmphasis)
	return h, err == nil && (s.FreeFormat || h.Bitrate != 0)
}

// First scans r (size bytes) from off for the first frame and returns its
// header and offset. Finding none within the window is ErrNoAudioFrame.
func (s Search) First(r io.ReaderAt, off, size int64) (FrameHeader, int64, error) {
	limit := min(size, off+s.Window)
	buf := make([]byte, scanChunk+3)
	for base := off; base < limit; base += scanChunk {
		n, err := r.ReadAt(buf, base)
		if err != nil && !errors.Is(err, io.EOF) {
			return FrameHeader{}, 0, fmt.Errorf("scan for first frame: %w", err)
		}
		for i := 0; i+4 <= n && i < scanChunk && base+int64(i) < limit; i++ {
			if buf[i] != 0xFF || buf[i+1]&0xE0 != 0xE0 {
				continue
			}
			h, ok := s.header(buf[i : i+4])
			if !ok {
				continue
			}
			pos := base + int64(i)
			ok, err := s.confirm(r, h, pos, size, pos == off)
			if err != nil {
				return FrameHeader{}, 0, err
			}
			if ok {
				return h, pos, nil
			}
		}
		if n < len(buf) {
			break
		}
	}
	return FrameHeader{}, 0, fmt.Errorf("%w in the first %d bytes after offset %d", ErrNoAudioFrame, s.Window, off)
}

// confirm checks that s.Follow frames of the same stream follow the
// candidate h at pos.
func (s Search) confirm(r io.ReaderAt, h FrameHeader, pos, size int64, atStart bool) (bool, error) {
	if h.Length == 0 {
		return s.confirmFreeFormat(r, h, pos, size, atStart)
	}
	next := pos
	for k := range s.Follow {
		next += int64(h.Length)
		if next+4 > size {
			if s.End == EndWholeFrame {
				return k > 0 || next <= size, nil
			}
			return atStart, nil
		}
		var b [4]byte
		if _, err := r.ReadAt(b[:], next); err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("read frame at %d: %w", next, err)
		}
		if s.TAGConfirms && string(b[:3]) == "TAG" {
			return true, nil
		}
		h2, ok := s.header(b[:])
		if !ok || !SameStream(h, h2) {
			return false, nil
		}
		h = h2
	}
	return true, nil
}

// confirmFreeFormat looks for the next free-format header within the
// largest possible frame. That distance is the stream's frame length, so
// when Follow asks for more, the further frames must start where that
// length puts them, as in any other stream: one more free-format header
// somewhere in 2.9 KB of random bytes is not rare enough.
func (s Search) confirmFreeFormat(r io.ReaderAt, h FrameHeader, pos, size int64, atStart bool) (bool, error) {
	buf := make([]byte, MaxFrameBytes+4)
	n, err := r.ReadAt(buf, pos+4)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read frame at %d: %w", pos, err)
	}
	for i := 0; i+4 <= n; i++ {
		if buf[i] != 0xFF {
			continue
		}
		h2, ok := s.header(buf[i : i+4])
		if !ok || h2.Bitrate != 0 || !SameStream(h, h2) {
			continue
		}
		base := 4 + i - padSlot(h)
		if base <= 4 {
			continue
		}
		return s.confirmFreeChain(r, h2, pos+4+int64(i), base, size)
	}
	return atStart && pos+4+int64(n) >= size, nil
}

// confirmFreeChain checks the frames after the second free-format header
// (h at pos): Follow-1 more, each base bytes plus its padding slot after
// the one before. A chain the end of the file cuts short counts as
// confirmed: the two headers already agree.
func (s Search) confirmFreeChain(r io.ReaderAt, h FrameHeader, pos int64, base int, size int64) (bool, error) {
	for range s.Follow - 1 {
		pos += int64(base + padSlot(h))
		if pos+4 > size {
			return true, nil
		}
		var b [4]byte
		if _, err := r.ReadAt(b[:], pos); err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("read frame at %d: %w", pos, err)
		}
		h2, ok := s.header(b[:])
		if !ok || h2.Bitrate != 0 || !SameStream(h, h2) {
			return false, nil
		}
		h = h2
	}
	return true, nil
}
