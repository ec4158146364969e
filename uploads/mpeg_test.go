package uploads

import "github.com/mohproject/moh/internal/mp3"

// mpegHeader, parseMPEG and parseXing read a rendition's first frame for
// the tests that hold it to the house format, through internal/mp3 as the
// sniffer does.
type mpegHeader struct {
	version int // 1, 2, or 25 for MPEG-2.5
	layer   int
	rate    int
	mono    bool
	length  int
	h       mp3.FrameHeader
}

func parseMPEG(b []byte) (mpegHeader, bool) {
	h, err := mp3.ParseFrameHeader(b)
	if err != nil || h.Bitrate == 0 {
		return mpegHeader{}, false
	}
	v := map[mp3.MPEGVersion]int{mp3.MPEG1: 1, mp3.MPEG2: 2, mp3.MPEG25: 25}[h.Version]
	return mpegHeader{version: v, layer: h.Layer, rate: h.SampleRate, mono: h.Mode == mp3.ModeMono, length: h.Length, h: h}, true
}

// parseXing returns the tag's frame count and, when the LAME extension
// gives an exact length, the encoder delay plus padding.
func parseXing(fr []byte, h mpegHeader) (frames, delayPad int64, isTag bool) {
	t := mp3.ParseTag(h.h, fr)
	if t.Gapless {
		delayPad = int64(t.EncoderDelay + t.Padding)
	}
	return t.Frames, delayPad, t.Kind != ""
}
