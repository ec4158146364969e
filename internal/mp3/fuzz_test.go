package mp3

import (
	"bytes"
	"testing"
)

// FuzzReadInfo: the parser never panics, never reads or allocates by a
// size a file claims, and what it accepts is self-consistent.
func FuzzReadInfo(f *testing.F) {
	f.Add(encode(f, 4*1152, "lame", "-b", "128")[:2048])
	f.Add(tagSpec{hdr: hdrV1Joint, id: "Info", flags: 15, frames: 2, nbytes: 1251, scale: 57, enc: "LAME3.100", delay: 576, padding: 600}.build(f))
	f.Add(tagSpec{hdr: hdrV2Stereo, id: "Xing", flags: 1, frames: 3, enc: "Lavc", delay: 1, padding: 2}.build(f))
	f.Add([]byte("ID3\x04\x00\x10\x00\x00\x00\x05\x00\x00\x00\x00\x003DI\x04\x00\x10\x00\x00\x00\x05\xff\xfb\x90\x64"))
	f.Add([]byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f\xff\xfb\x90\x64"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseInfo(data)
		if err != nil {
			return
		}
		if info.AudioOffset < 0 || info.AudioOffset >= int64(len(data)) {
			t.Fatalf("audio offset %d outside a %d-byte file", info.AudioOffset, len(data))
		}
		if info.Layer < 1 || info.Layer > 3 || info.SampleRate < 8000 || info.SampleRate > 48000 || info.TotalSamples < 0 {
			t.Fatalf("implausible info %+v", info)
		}
		if info.Gapless && info.TotalSamples != info.Frames*int64(info.SamplesPerFrame)-int64(info.EncoderDelay+info.Padding) {
			t.Fatalf("inconsistent totals %+v", info)
		}
	})
}

// FuzzSniffScan: the upload sniffer's search and walk never panic, and a
// first frame they accept is a whole frame with a length inside the file
// that the walk counts.
func FuzzSniffScan(f *testing.F) {
	f.Add(encode(f, 4*1152, "lame", "-b", "32"))
	f.Add(encode(f, 4*1152, "lame", "-V2"))
	f.Add(cbr(f, hdrV1Joint, 3))
	f.Add(append(cbr(f, hdrV1Joint, 2), "TAG"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, size := bytes.NewReader(data), int64(len(data))
		off, _ := SkipID3v2(r, size, 4)
		h, pos, err := sniffRules.First(r, off, size)
		if err != nil {
			return
		}
		if h.Length <= 0 || pos < off || pos+int64(h.Length) > size {
			t.Fatalf("first frame %+v at %d in a %d-byte file (tags end at %d)", h, pos, size, off)
		}
		w := sniffRules.Walk(r, pos, size, h)
		if w.Frames < 1 || w.Bitrates < 1 || w.Frames*4 > size-pos {
			t.Fatalf("walk %+v from %d in a %d-byte file", w, pos, size)
		}
		tag := ParseTag(h, data[pos:pos+int64(h.Length)])
		if tag.Frames < 0 || tag.Gapless && tag.TotalSamples <= 0 {
			t.Fatalf("tag %+v", tag)
		}
	})
}
