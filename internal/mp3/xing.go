package mp3

// This file reads the info frame some encoders put first: a Xing or Info
// tag (with LAME's extension, which holds the encoder delay and padding) or
// Fraunhofer's VBRI tag. It carries no audio: it gives the exact length of
// the stream, without which no decoder can loop a track gaplessly.

import (
	"bytes"
	"encoding/binary"
)

// Tag is what a first frame's Xing/Info or VBRI tag says.
type Tag struct {
	Kind     string // "Xing", "Info", "VBRI", or "" when the frame has no tag
	Frames   int64  // audio frames after the tag frame; 0 unknown
	Bytes    int64  // stream bytes, the tag frame included; 0 unknown
	HasTOC   bool
	VBRScale int // 0..100, -1 unknown

	// Encoder is the LAME extension's encoder string, e.g. "LAME3.100";
	// LAMEOffset is where that extension starts in the frame. Both are
	// zero when there is no extension from an encoder known to write one.
	Encoder    string
	LAMEOffset int
	// Gapless is true when the extension's delay and padding agree with
	// the frame count: TotalSamples is then the exact length per channel
	// of the original audio. An inconsistent tag gives none of the three.
	Gapless      bool
	EncoderDelay int
	Padding      int
	TotalSamples int64
}

// lameEncoders are the encoder strings whose extension moh trusts for the
// delay and padding: LAME itself and ffmpeg's libmp3lame wrappers.
var lameEncoders = [][]byte{[]byte("LAME"), []byte("Lavf"), []byte("Lavc"), []byte("L3.99")}

// vbriOffset is where a VBRI tag sits: after 32 bytes whatever the mode.
const vbriOffset = 4 + 32

// ParseTag reads the tag in a stream's first frame, whose header is h;
// frame holds the frame's first bytes (a short frame gives what fits). The
// tag is looked for right after the side information and, when the frame
// has a CRC, also 2 bytes further, as some writers count the CRC. The
// offsets are Layer III's; callers that trust only Layer III tags check
// the layer first.
func ParseTag(h FrameHeader, frame []byte) Tag {
	t := Tag{VBRScale: -1}
	offs := []int{4 + h.SideInfoSize()}
	if h.Protected {
		offs = append(offs, 6+h.SideInfoSize())
	}
	for _, off := range offs {
		if off+8 <= len(frame) {
			id := string(frame[off : off+4])
			if id == "Xing" || id == "Info" {
				parseXing(&t, h, frame, off)
				return t
			}
		}
	}
	if vbriOffset+26 <= len(frame) && string(frame[vbriOffset:vbriOffset+4]) == "VBRI" {
		t.Kind = "VBRI"
		t.Bytes = int64(binary.BigEndian.Uint32(frame[vbriOffset+10:]))
		t.Frames = int64(binary.BigEndian.Uint32(frame[vbriOffset+14:]))
		// The VBRI frame count includes the VBRI frame itself.
		if t.Frames > 0 {
			t.Frames--
		}
	}
	return t
}

// parseXing reads a Xing/Info tag at off: the flagged fields in order, then
// the LAME extension. A field cut off by the end of frame ends the parse
// with what was read so far.
func parseXing(t *Tag, h FrameHeader, frame []byte, off int) {
	t.Kind = string(frame[off : off+4])
	flags := binary.BigEndian.Uint32(frame[off+4:])
	p := off + 8
	field := func(n int) ([]byte, bool) {
		if p+n > len(frame) {
			return nil, false
		}
		b := frame[p : p+n]
		p += n
		return b, true
	}
	if flags&1 != 0 {
		b, ok := field(4)
		if !ok {
			return
		}
		t.Frames = int64(binary.BigEndian.Uint32(b))
	}
	if flags&2 != 0 {
		b, ok := field(4)
		if !ok {
			return
		}
		t.Bytes = int64(binary.BigEndian.Uint32(b))
	}
	if flags&4 != 0 {
		if _, ok := field(100); !ok {
			return
		}
		t.HasTOC = true
	}
	if flags&8 != 0 {
		b, ok := field(4)
		if !ok {
			return
		}
		if s := binary.BigEndian.Uint32(b); s <= 100 {
			t.VBRScale = int(s)
		}
	}
	ext := p
	b, ok := field(24)
	if !ok {
		return
	}
	enc := b[:9]
	known := false
	for _, e := range lameEncoders {
		known = known || bytes.HasPrefix(enc, e)
	}
	if !known {
		return
	}
	t.Encoder = string(bytes.TrimRight(enc, "\x00 "))
	t.LAMEOffset = ext
	delay, padding := DelayPadding(frame[ext:])
	if t.Frames <= 0 {
		return
	}
	total := t.Frames*int64(h.SamplesPerFrame) - int64(delay) - int64(padding)
	if total <= 0 {
		return // an inconsistent tag: trust nothing in it
	}
	t.Gapless = true
	t.EncoderDelay = delay
	t.Padding = padding
	t.TotalSamples = total
}

// The LAME extension, from its start: a 9-byte encoder string, ..., at 21
// the encoder delay and padding (12 bits each), ..., at 34 the CRC-16 of
// the info frame up to there.
const (
	lameDelayPadding = 21
	// LAMECRCOffset is where the tag CRC sits in the LAME extension;
	// LAMEExtSize is the extension's whole length.
	LAMECRCOffset = 34
	LAMEExtSize   = 36
)

// DelayPadding reads the encoder delay and padding from a LAME extension
// (ext starts at the extension and holds at least 24 bytes).
func DelayPadding(ext []byte) (delay, padding int) {
	b := ext[lameDelayPadding:]
	return int(b[0])<<4 | int(b[1])>>4, int(b[1]&0x0F)<<8 | int(b[2])
}

// PutDelayPadding writes the encoder delay and padding, each at most 4095,
// into a LAME extension. The tag CRC must be rewritten after (LAMECRC).
func PutDelayPadding(ext []byte, delay, padding int) {
	b := ext[lameDelayPadding:]
	b[0] = byte(delay >> 4)
	b[1] = byte(delay&0x0F)<<4 | byte(padding>>8)
	b[2] = byte(padding)
}

// LAMECRC is the CRC LAME puts in its tag over the info frame's bytes up
// to the CRC field: CRC-16 with polynomial 0x8005, reflected, initial
// value 0 (CRC-16/ARC).
func LAMECRC(b []byte) uint16 {
	var crc uint16
	for _, v := range b {
		crc ^= uint16(v)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
