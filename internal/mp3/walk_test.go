package mp3

import (
	"bytes"
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
