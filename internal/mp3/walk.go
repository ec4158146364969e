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
	// Frames counts the whole frames of the first frame's stream, an info
	// frame included.
	Frames int64
	// Bitrates is how many different bitrates those frames use: more than
	// one is VBR.
	Bitrates int
	// Truncated is set when the stream ends inside a frame (or with the
	// start of a sync word).
	Truncated bool
}

// trailingTags are the tags that may follow the audio: where one starts,
// the walk ends.
var trailingTags = [][]byte{[]byte("TAG"), []byte("APETAGEX"), []byte("LYRICS"), []byte("ID3")}

// Walk reads r (size bytes) from pos, the first frame found by First with
// header first, to the end of the audio. Bytes that are not a frame of
// first's stream under the search's rules are junk and are skipped one at
// a time until a frame starts again; a trailing tag ends the audio. A
// free-format frame, whose length no header says, is junk here. Reads are
// buffered; memory use is one buffer whatever the file's length.
func (s Search) Walk(r io.ReaderAt, pos, size int64, first FrameHeader) Walked {
	var w Walked
	br := bufio.NewReaderSize(io.NewSectionReader(r, pos, size-pos), 64<<10)
	bitrates := map[int]bool{}
	for {
		b, _ := br.Peek(4)
		if len(b) < 4 {
			if len(b) > 0 && b[0] == 0xff {
				w.Truncated = true
			}
			break
		}
		h, ok := s.header(b)
		if !ok || h.Length == 0 || !SameStream(h, first) {
			t, _ := br.Peek(8)
			if trailingTag(t) {
				break
			}
			br.Discard(1) // junk between frames: resync
			continue
		}
		d, _ := br.Discard(h.Length)
		if d < h.Length {
			w.Truncated = true // the last frame is cut off
			break
		}
		w.Frames++
		bitrates[h.Bitrate] = true
	}
	w.Bitrates = len(bitrates)
	return w
}

func trailingTag(b []byte) bool {
	for _, t := range trailingTags {
		if bytes.HasPrefix(b, t) {
			return true
		}
	}
	return false
}
