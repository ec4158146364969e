package mp3

import (
	"bytes"
	"slices"
	"testing"
)

func TestWalk(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f128 := cbr(t, hdrV1Joint, 1)                      // 128 kbit/s, 417 bytes
	f160 := cbr(t, [4]byte{0xFF, 0xFB, 0xA0, 0x64}, 1) // 160 kbit/s, 522 bytes
	f48k := cbr(t, [4]byte{0xFF, 0xFB, 0x94, 0x64}, 1) // 48 kHz: another stream
	tests := []struct {
		name      string
		data      []byte
		frames    int64
		bitrates  int
		truncated bool
	}{
		{"cbr", cat(f128, f128, f128), 3, 1, false},
		{"vbr", cat(f128, f160, f128), 3, 2, false},
		{"junk between frames", cat(f128, []byte("junk"), f128), 2, 1, false},
		{"another stream is junk", cat(f128, f48k, f128), 2, 1, false},
		{"last frame cut", cat(f128, f128[:300]), 1, 1, true},
		{"ends with a sync byte", cat(f128, []byte{0xFF, 0xFB}), 1, 1, true},
		{"ID3v1 ends the audio", cat(f128, []byte("TAG"), f128), 1, 1, false},
		{"APE tag ends the audio", cat(f128, []byte("APETAGEX"), f128), 1, 1, false},
		{"free-format frame is junk", cat(f128, []byte{0xFF, 0xFB, 0x00, 0x64}, f128), 2, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, _ := ParseFrameHeader(tt.data)
			w := sniffRules.Walk(bytes.NewReader(tt.data), 0, int64(len(tt.data)), first)
			if w.Frames != tt.frames || w.Bitrates != tt.bitrates || w.Truncated != tt.truncated {
				t.Fatalf("%+v, want %d frames, %d bitrates, truncated %v", w, tt.frames, tt.bitrates, tt.truncated)
			}
		})
	}
}

// TestWalkRealFile: a walk counts what lame wrote: the info frame and
// every audio frame the tag announces.
func TestWalkRealFile(t *testing.T) {
	b := encode(t, 3*44100, "lame", "-V2")
	h, pos, err := sniffRules.First(bytes.NewReader(b), 0, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	tag := ParseTag(h, b[pos:pos+int64(h.Length)])
	w := sniffRules.Walk(bytes.NewReader(b), pos, int64(len(b)), h)
	if tag.Kind != "Xing" || w.Frames != tag.Frames+1 || w.Bitrates < 2 || w.Truncated {
		t.Fatalf("tag %+v, walk %+v", tag, w)
	}
	cut := b[:len(b)-100]
	if w := sniffRules.Walk(bytes.NewReader(cut), pos, int64(len(cut)), h); !w.Truncated {
		t.Fatalf("cut file: %+v", w)
	}
}

// uploadRules are the upload sniffer's rules since it takes free format
// and joined streams (uploads/sniff.go).
var uploadRules = Search{Window: 64<<10 - 3, Follow: 2, AnyEmphasis: true, FreeFormat: true, Parts: true, End: EndWholeFrame}

// freeFrames builds n free-format frames (MPEG-1 Layer III 44.1 kHz
// joint stereo) of length base, the padding bit set on every odd one.
func freeFrames(n, base int) []byte {
	var out []byte
	for i := range n {
		f := make([]byte, base+i%2)
		copy(f, []byte{0xFF, 0xFB, 0x00 | byte(i%2)<<1, 0x64})
		out = append(out, f...)
	}
	return out
}

func TestWalkFreeFormatAndParts(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f128 := cbr(t, hdrV1Joint, 1)
	f48k := cbr(t, [4]byte{0xFF, 0xFB, 0x94, 0x64}, 1) // 48 kHz, 384 bytes
	mono := cbr(t, [4]byte{0xFF, 0xFB, 0x90, 0xC4}, 1) // 44.1 kHz mono
	free := freeFrames(5, 700)
	tests := []struct {
		name    string
		data    []byte
		frames  int64
		parts   []int64 // frames per part
		missing int
		end     int
	}{
		{"free format", free, 5, []int64{5}, 0, len(free)},
		{"free format, last frame cut", free[:len(free)-10], 4, []int64{4}, 10, len(free) - 700},
		{"44.1k then 48k", cat(f128, f128, f48k, f48k, f48k), 5, []int64{2, 3}, 0, 2*417 + 3*384},
		{"stereo then mono", cat(f128, f128, mono, mono, mono), 5, []int64{2, 3}, 0, 5 * 417},
		{"one frame of another stream is junk", cat(f128, f48k, f128), 2, []int64{2}, 0, 2*417 + 384},
		{"stray bytes after the audio", cat(f128, f128, []byte{0xFF, 0xFF, 'j', 'u', 'n', 'k'}), 2, []int64{2}, 0, 2 * 417},
		{"a header and a few bytes after the audio", cat(f128, f128, f128[:8]), 2, []int64{2}, 409, 2 * 417},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, size := bytes.NewReader(tt.data), int64(len(tt.data))
			first, _ := ParseFrameHeader(tt.data)
			w := uploadRules.Walk(r, 0, size, first)
			var parts []int64
			for _, p := range w.Parts {
				parts = append(parts, p.Frames)
			}
			if w.Frames != tt.frames || !slices.Equal(parts, tt.parts) || w.Missing != tt.missing || w.End != int64(tt.end) {
				t.Fatalf("%+v, want %d frames in parts %v, missing %d, end %d", w, tt.frames, tt.parts, tt.missing, tt.end)
			}
		})
	}
}

// TestFreeFormatNeedsAChain: a free-format header is taken for a stream
// only when the frames after it sit where its length puts them; two
// free-format headers in random bytes are not enough.
func TestFreeFormatNeedsAChain(t *testing.T) {
	junk := bytes.Repeat([]byte{0x55}, 4000)
	copy(junk[100:], []byte{0xFF, 0xFB, 0x00, 0x64})
	copy(junk[900:], []byte{0xFF, 0xFB, 0x00, 0x64})
	if _, _, err := uploadRules.First(bytes.NewReader(junk), 0, int64(len(junk))); err == nil {
		t.Fatal("two stray free-format headers taken for audio")
	}
	b := encode(t, 3*1152, "lame", "--freeformat", "-b", "200")
	h, _, err := uploadRules.First(bytes.NewReader(b), 0, int64(len(b)))
	if err != nil || h.Bitrate != 0 {
		t.Fatalf("lame --freeformat: %+v, %v", h, err)
	}
}

func TestMainDataBegin(t *testing.T) {
	b := encode(t, 20*1152, "lame", "-t", "-b", "128") // no info frame: audio from the first frame
	h, err := ParseFrameHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := MainDataBegin(h, b); !ok || n != 0 {
		t.Fatalf("a stream's first frame: main_data_begin %d, %v", n, ok)
	}
	var mid int
	for off := h.Length; off < len(b)-4; off++ { // a later frame uses the reservoir
		h2, err := ParseFrameHeader(b[off:])
		if err != nil || h2.Length == 0 || !SameStream(h, h2) {
			continue
		}
		if n, ok := MainDataBegin(h2, b[off:]); ok && n > 0 {
			mid = n
			break
		}
	}
	if mid == 0 {
		t.Fatal("no frame after the first uses the bit reservoir")
	}
	if _, ok := MainDataBegin(FrameHeader{Layer: 2}, b); ok {
		t.Fatal("Layer II has no main_data_begin")
	}
}
