package mp3

import (
	"encoding/binary"
	"testing"
)

// tagSpec.build makes a first frame with header hdr carrying a Xing/Info tag
// after the side info, and a LAME extension when enc is not empty. Two
// plain frames follow, so the first frame is confirmed as in a real file.
type tagSpec struct {
	hdr            [4]byte
	id             string // "Xing" or "Info"
	flags          uint32
	frames, nbytes uint32
	scale          uint32
	enc            string
	delay, padding int
	cut            int // if > 0, truncate the file to this many bytes
}

func (s tagSpec) build(t testing.TB) []byte {
	h, err := ParseFrameHeader(s.hdr[:])
	if err != nil {
		t.Fatal(err)
	}
	f := make([]byte, h.Length)
	copy(f, s.hdr[:])
	p := 4 + h.SideInfoSize()
	copy(f[p:], s.id)
	binary.BigEndian.PutUint32(f[p+4:], s.flags)
	p += 8
	if s.flags&1 != 0 {
		binary.BigEndian.PutUint32(f[p:], s.frames)
		p += 4
	}
	if s.flags&2 != 0 {
		binary.BigEndian.PutUint32(f[p:], s.nbytes)
		p += 4
	}
	if s.flags&4 != 0 {
		for i := 0; i < 100; i++ {
			f[p+i] = byte(i * 2)
		}
		p += 100
	}
	if s.flags&8 != 0 {
		binary.BigEndian.PutUint32(f[p:], s.scale)
		p += 4
	}
	if s.enc != "" {
		copy(f[p:], s.enc)
		f[p+21] = byte(s.delay >> 4)
		f[p+22] = byte(s.delay<<4) | byte(s.padding>>8)
		f[p+23] = byte(s.padding)
	}
	plain := make([]byte, h.Length)
	copy(plain, s.hdr[:])
	out := append(append(f, plain...), plain...)
	if s.cut > 0 {
		out = out[:s.cut]
	}
	return out
}

var (
	hdrV1Joint  = [4]byte{0xFF, 0xFB, 0x90, 0x64}
	hdrV1Mono   = [4]byte{0xFF, 0xFB, 0x90, 0xC4}
	hdrV2Stereo = [4]byte{0xFF, 0xF3, 0x90, 0x44} // MPEG-2 L3 80k 22.05 joint
)

func TestParseInfoTag(t *testing.T) {
	tests := []struct {
		name string
		spec tagSpec
		want Info // only the tag fields are compared
	}{
		{"info+lame", tagSpec{hdr: hdrV1Joint, id: "Info", flags: 15, frames: 100, nbytes: 41700, scale: 57, enc: "LAME3.100", delay: 576, padding: 1260},
			Info{HasInfoTag: true, InfoTag: "Info", Frames: 100, Bytes: 41700, HasTOC: true, VBRScale: 57, Encoder: "LAME3.100", Gapless: true, EncoderDelay: 576, Padding: 1260, TotalSamples: 100*1152 - 576 - 1260}},
		{"xing frames only", tagSpec{hdr: hdrV1Joint, id: "Xing", flags: 1, frames: 50, enc: "LAME3.99r", delay: 576, padding: 600},
			Info{HasInfoTag: true, InfoTag: "Xing", Frames: 50, VBRScale: -1, Encoder: "LAME3.99r", Gapless: true, EncoderDelay: 576, Padding: 600, TotalSamples: 50*1152 - 1176}},
		{"mono offset", tagSpec{hdr: hdrV1Mono, id: "Info", flags: 1, frames: 10, enc: "Lavc60.31", delay: 1105, padding: 4095},
			Info{HasInfoTag: true, InfoTag: "Info", Frames: 10, VBRScale: -1, Encoder: "Lavc60.31", Gapless: true, EncoderDelay: 1105, Padding: 4095, TotalSamples: 11520 - 5200}},
		{"mpeg2 offset", tagSpec{hdr: hdrV2Stereo, id: "Xing", flags: 1, frames: 40, enc: "LAME3.100", delay: 576, padding: 1000},
			Info{HasInfoTag: true, InfoTag: "Xing", Frames: 40, VBRScale: -1, Encoder: "LAME3.100", Gapless: true, EncoderDelay: 576, Padding: 1000, TotalSamples: 40*576 - 1576}},
		{"unknown encoder", tagSpec{hdr: hdrV1Joint, id: "Info", flags: 1, frames: 10, enc: "GOGO1.0", delay: 576, padding: 600},
			Info{HasInfoTag: true, InfoTag: "Info", Frames: 10, VBRScale: -1, TotalSamples: 11520}},
		{"no lame extension", tagSpec{hdr: hdrV1Joint, id: "Xing", flags: 3, frames: 10, nbytes: 4170},
			Info{HasInfoTag: true, InfoTag: "Xing", Frames: 10, Bytes: 4170, VBRScale: -1, TotalSamples: 11520}},
		{"delay past the end", tagSpec{hdr: hdrV1Joint, id: "Info", flags: 1, frames: 2, enc: "LAME3.100", delay: 2000, padding: 1000},
			Info{HasInfoTag: true, InfoTag: "Info", Frames: 2, VBRScale: -1, Encoder: "LAME3.100", TotalSamples: 2304}},
		{"zero frames", tagSpec{hdr: hdrV1Joint, id: "Info", flags: 1, frames: 0, enc: "LAME3.100", delay: 576, padding: 600},
			Info{HasInfoTag: true, InfoTag: "Info", VBRScale: -1, Encoder: "LAME3.100"}},
		{"bad scale ignored", tagSpec{hdr: hdrV1Joint, id: "Xing", flags: 8, scale: 1000},
			Info{HasInfoTag: true, InfoTag: "Xing", VBRScale: -1}},
		{"cut inside the toc", tagSpec{hdr: hdrV1Joint, id: "Info", flags: 15, frames: 9, nbytes: 9, cut: 36 + 8 + 8 + 50},
			Info{HasInfoTag: true, InfoTag: "Info", Frames: 9, Bytes: 9, VBRScale: -1, TotalSamples: 9 * 1152}},
		{"no tag", tagSpec{hdr: hdrV1Joint, id: "abcd"}, Info{VBRScale: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := ParseInfo(tt.spec.build(t))
			if err != nil {
				t.Fatal(err)
			}
			got := Info{HasInfoTag: info.HasInfoTag, InfoTag: info.InfoTag, Frames: info.Frames, Bytes: info.Bytes,
				HasTOC: info.HasTOC, VBRScale: info.VBRScale, Encoder: info.Encoder, Gapless: info.Gapless,
				EncoderDelay: info.EncoderDelay, Padding: info.Padding, TotalSamples: info.TotalSamples}
			if got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseVBRI(t *testing.T) {
	f := make([]byte, 417*3)
	for i := 0; i < 3; i++ {
		copy(f[i*417:], hdrV1Joint[:])
	}
	copy(f[36:], "VBRI")
	binary.BigEndian.PutUint32(f[36+10:], 123456)
	binary.BigEndian.PutUint32(f[36+14:], 301)
	info, err := ParseInfo(f)
	if err != nil {
		t.Fatal(err)
	}
	if !info.HasInfoTag || info.InfoTag != "VBRI" || info.Frames != 300 || info.Bytes != 123456 || info.Gapless {
		t.Fatalf("%+v", info)
	}
}

// TestParseTagCRCOffset: a frame with a CRC may carry its tag after the
// side information (as lame -p writes it) or 2 bytes further.
func TestParseTagCRCOffset(t *testing.T) {
	hdr := [4]byte{0xFF, 0xFA, 0x90, 0x64} // MPEG-1 Layer III with CRC
	h, err := ParseFrameHeader(hdr[:])
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{4 + 32, 6 + 32} {
		f := make([]byte, h.Length)
		copy(f, hdr[:])
		copy(f[off:], "Info\x00\x00\x00\x01")
		binary.BigEndian.PutUint32(f[off+8:], 77)
		if tag := ParseTag(h, f); tag.Kind != "Info" || tag.Frames != 77 {
			t.Errorf("tag at %d: %+v", off, tag)
		}
	}
}

// TestParseTagRealFiles: the delay and padding of what lame and ffmpeg
// write give back exactly the encoded length.
func TestParseTagRealFiles(t *testing.T) {
	const frames = 44100 + 123
	for name, b := range map[string][]byte{
		"lame cbr":    encode(t, frames, "lame", "-b", "128"),
		"lame vbr":    encode(t, frames, "lame", "-V2"),
		"lame crc":    encode(t, frames, "lame", "-p", "-b", "128"),
		"lame mono":   encode(t, frames, "lame", "-a", "-m", "m", "-b", "64"),
		"ffmpeg lavc": encode(t, frames, "ffmpeg", "-c:a", "libmp3lame", "-b:a", "128k"),
	} {
		t.Run(name, func(t *testing.T) {
			info, err := ParseInfo(b)
			if err != nil {
				t.Fatal(err)
			}
			if !info.Gapless || info.TotalSamples != frames || info.EncoderDelay < 576 {
				t.Fatalf("%+v", info)
			}
		})
	}
}

func TestLAMEExtension(t *testing.T) {
	ext := make([]byte, LAMEExtSize)
	for _, dp := range [][2]int{{0, 0}, {576, 1260}, {4095, 4095}, {1105, 1}} {
		PutDelayPadding(ext, dp[0], dp[1])
		if d, p := DelayPadding(ext); d != dp[0] || p != dp[1] {
			t.Errorf("wrote %d/%d, read %d/%d", dp[0], dp[1], d, p)
		}
	}
	// The check value of CRC-16/ARC.
	if got := LAMECRC([]byte("123456789")); got != 0xBB3D {
		t.Errorf("LAMECRC = %04x, want bb3d", got)
	}
	b := encode(t, 44100, "lame", "-b", "128")
	h, _ := ParseFrameHeader(b)
	tag := ParseTag(h, b[:h.Length])
	if tag.LAMEOffset == 0 || string(b[tag.LAMEOffset:tag.LAMEOffset+4]) != "LAME" {
		t.Fatalf("LAME extension at %d", tag.LAMEOffset)
	}
	crcAt := tag.LAMEOffset + LAMECRCOffset
	if got, want := LAMECRC(b[:crcAt]), binary.BigEndian.Uint16(b[crcAt:]); got != want {
		t.Fatalf("lame wrote crc %04x, LAMECRC computes %04x", want, got)
	}
}
