package mp3

// This file walks every frame of a stream, to learn its real length and
// whether it is cut short, where the headers alone could lie.

import (
	"bufio"
	"bytes"
	"io"
)

// Walked is what a walk over a stream's frames found.
type Walked struct {
	// Frames counts the whole frames of the first frame's stream (of
	// every part, with Search.Parts), info frames included.
	Frames int64
	// Bitrates is how many different bitrates those frames use: more than
	// one is VBR. A free-format stream counts as one.
	Bitrates int
	// Truncated is set when the stream ends inside a frame (or with the
	// start of a sync word).
	Truncated bool
	// Missing is how many bytes the last frame lacks when the stream ends
	// inside a frame whose header is whole; 0 otherwise. A few missing
	// bytes are a short last frame that decoders drop; most of a frame
	// missing is a file cut off in its middle. CutLength is that frame's
	// whole length.
	Missing, CutLength int
	// End is the offset just after the last whole frame: where the audio
	// ends, whatever junk, tags or cut-off frame follow.
	End int64
	// Parts are the runs of frames of one stream, in file order: one
	// part unless Search.Parts let another stream take over.
	Parts []Part
}

// Part is a run of frames of one stream: one version, layer, sample rate
// and channel count. It starts at Offset and runs to the next part's
// Offset (or Walked.End), junk and tags between included.
type Part struct {
	Offset int64
	First  FrameHeader // the part's first frame
	Frames int64       // whole frames, an info frame included
}

// trailingTags are the tags that may follow the audio: where one starts,
// the walk ends.
var trailingTags = [][]byte{[]byte("TAG"), []byte("APETAGEX"), []byte("LYRICS"), []byte("ID3")}

// Walk reads r (size bytes) from pos, the first frame found by First with
// header first, to the end of the audio. Bytes that are not a frame of the
// current stream under the search's rules are junk and are skipped one at
// a time until a frame starts again; a trailing tag ends the audio. With
// Search.Parts, a frame of another stream (or another channel count) that
// the frames after it confirm starts a new part instead of being junk.
// With Search.FreeFormat, a free-format frame is as long as the distance
// from the stream's first free-format header to its second (plus the
// padding slot when the padding bit is set), as decoders measure it;
// otherwise it is junk. Reads are buffered; memory use is one buffer
// whatever the file's length.
func (s Search) Walk(r io.ReaderAt, pos, size int64, first FrameHeader) Walked {
	w := Walked{End: pos, Parts: []Part{{Offset: pos, First: first}}}
	br := bufio.NewReaderSize(io.NewSectionReader(r, pos, size-pos), 64<<10)
	bitrates := map[int]bool{}
	cur := first
	free := 0 // a free-format stream's unpadded frame length, once known
	at := pos
	for {
		b, _ := br.Peek(4)
		if len(b) < 4 {
			if len(b) > 0 && b[0] == 0xff {
				w.Truncated = true
			}
			break
		}
		h, ok := s.header(b)
		if ok && h.Length == 0 {
			n := free
			if n == 0 || !SameStream(h, cur) {
				n = s.freeLength(r, h, at, size)
			}
			if n > 0 {
				h.Length = n + padSlot(h)
			}
		}
		switch {
		case ok && h.Length > 0 && SameStream(h, cur) && (!s.Parts || h.Channels() == cur.Channels()):
		case ok && h.Length > 0 && s.Parts && s.startsPart(r, h, at, size):
			w.Parts = append(w.Parts, Part{Offset: at, First: h})
			cur, free = h, 0
		default:
			t, _ := br.Peek(8)
			if trailingTag(t) {
				w.Bitrates = len(bitrates)
				return w
			}
			br.Discard(1) // junk between frames: resync
			at++
			continue
		}
		d, _ := br.Discard(h.Length)
		at += int64(d)
		if d < h.Length {
			w.Truncated = true // the last frame is cut off
			w.Missing, w.CutLength = h.Length-d, h.Length
			break
		}
		if h.Bitrate == 0 && free == 0 {
			free = h.Length - padSlot(h) // every later frame of the stream has this length
		}
		w.Frames++
		w.End = at
		w.Parts[len(w.Parts)-1].Frames++
		bitrates[h.Bitrate] = true
	}
	w.Bitrates = len(bitrates)
	return w
}

// startsPart reports whether h at pos, a frame of another stream than the
// one walked so far, is confirmed by the frames after it as a stream that
// takes over (as in two files joined with cat), rather than junk that
// happens to look like a header.
func (s Search) startsPart(r io.ReaderAt, h FrameHeader, pos, size int64) bool {
	ok, err := s.confirm(r, h, pos, size, false)
	return ok && err == nil
}

// freeLength measures a free-format stream's unpadded frame length: the
// distance from the frame at pos to the next free-format header of the
// same stream, less the first frame's padding. 0 when none follows within
// MaxFrameBytes.
func (s Search) freeLength(r io.ReaderAt, h FrameHeader, pos, size int64) int {
	if !s.FreeFormat {
		return 0
	}
	buf := make([]byte, MaxFrameBytes+4)
	n, _ := r.ReadAt(buf, pos+4)
	for i := 0; i+4 <= n; i++ {
		if buf[i] != 0xFF {
			continue
		}
		if h2, ok := s.header(buf[i : i+4]); ok && h2.Bitrate == 0 && SameStream(h, h2) {
			if l := 4 + i - padSlot(h); l > 4 {
				return l
			}
		}
	}
	return 0
}

// padSlot is what the padding bit adds to a frame: one slot, 4 bytes in
// Layer I and 1 byte otherwise.
func padSlot(h FrameHeader) int {
	switch {
	case !h.Padding:
		return 0
	case h.Layer == 1:
		return 4
	}
	return 1
}

func trailingTag(b []byte) bool {
	for _, t := range trailingTags {
		if bytes.HasPrefix(b, t) {
			return true
		}
	}
	return false
}
