package mp3

// This file decodes the 4-byte frame header: the one bitrate and
// sample-rate table moh has.

import "fmt"

// MPEGVersion is the MPEG audio version of a frame.
type MPEGVersion uint8

// MPEG audio versions.
const (
	MPEG1  MPEGVersion = 1
	MPEG2  MPEGVersion = 2 // LSF: 16, 22.05, 24 kHz
	MPEG25 MPEGVersion = 3 // unofficial extension: 8, 11.025, 12 kHz
)

func (v MPEGVersion) String() string {
	switch v {
	case MPEG1:
		return "MPEG-1"
	case MPEG2:
		return "MPEG-2"
	case MPEG25:
		return "MPEG-2.5"
	}
	return "MPEG-?"
}

// ChannelMode is the channel mode field of a frame header.
type ChannelMode uint8

// Channel modes, in header bit order.
const (
	ModeStereo ChannelMode = iota
	ModeJointStereo
	ModeDualChannel
	ModeMono
)

func (m ChannelMode) String() string {
	return [...]string{"stereo", "joint-stereo", "dual-channel", "mono"}[m&3]
}

// FrameHeader is one decoded 4-byte MPEG audio frame header.
type FrameHeader struct {
	Version         MPEGVersion
	Layer           int // 1, 2 or 3
	Protected       bool
	Bitrate         int // kbit/s; 0 means free format
	SampleRate      int // Hz
	Padding         bool
	Mode            ChannelMode
	SamplesPerFrame int
	// Length is the frame's size in bytes including the header; 0 for
	// free format, whose length the header does not say.
	Length int
}

// Channels is 1 for mono, 2 otherwise.
func (h FrameHeader) Channels() int {
	if h.Mode == ModeMono {
		return 1
	}
	return 2
}

// SideInfoSize is the Layer III side information size: a Xing/Info tag
// starts this many bytes after the header (and the CRC, if any).
func (h FrameHeader) SideInfoSize() int {
	switch {
	case h.Version == MPEG1 && h.Mode == ModeMono:
		return 17
	case h.Version == MPEG1:
		return 32
	case h.Mode == ModeMono:
		return 9
	}
	return 17
}

// SameStream reports whether two headers can belong to one stream: frames
// of one file share version, layer and sample rate. It tells a real frame
// from a sync word that random bytes happen to contain.
func SameStream(a, b FrameHeader) bool {
	return a.Version == b.Version && a.Layer == b.Layer && a.SampleRate == b.SampleRate
}

// MaxFrameBytes is the largest frame there is: MPEG-2.5 Layer II,
// 160 kbit/s at 8 kHz, padded. A free-format frame is looked for within it.
const MaxFrameBytes = 2881

var (
	bitratesV1 = [3][16]int{
		{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, -1},
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, -1},
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, -1},
	}
	bitratesV2 = [3][16]int{ // MPEG-2 and MPEG-2.5
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, -1},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, -1},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, -1},
	}
	sampleRates = map[MPEGVersion][3]int{
		MPEG1:  {44100, 48000, 32000},
		MPEG2:  {22050, 24000, 16000},
		MPEG25: {11025, 12000, 8000},
	}
)

// ParseFrameHeader decodes a 4-byte frame header. Every reserved value is
// refused, the emphasis field's included, as go-mp3 refuses it. Free
// format (bitrate index 0) is accepted with Bitrate and Length 0.
func ParseFrameHeader(b []byte) (FrameHeader, error) {
	return parseHeader(b, false)
}

// parseHeader is ParseFrameHeader; anyEmphasis lets the reserved emphasis
// value through, as mpg123 (the decoder behind the upload sniffer) does.
func parseHeader(b []byte, anyEmphasis bool) (FrameHeader, error) {
	if len(b) < 4 {
		return FrameHeader{}, fmt.Errorf("%w: %d bytes", ErrNoFrameHeader, len(b))
	}
	if b[0] != 0xFF || b[1]&0xE0 != 0xE0 {
		return FrameHeader{}, fmt.Errorf("%w: no sync word", ErrNoFrameHeader)
	}
	var h FrameHeader
	switch (b[1] >> 3) & 3 {
	case 0:
		h.Version = MPEG25
	case 2:
		h.Version = MPEG2
	case 3:
		h.Version = MPEG1
	default:
		return FrameHeader{}, fmt.Errorf("%w: reserved version", ErrNoFrameHeader)
	}
	switch (b[1] >> 1) & 3 {
	case 1:
		h.Layer = 3
	case 2:
		h.Layer = 2
	case 3:
		h.Layer = 1
	default:
		return FrameHeader{}, fmt.Errorf("%w: reserved layer", ErrNoFrameHeader)
	}
	h.Protected = b[1]&1 == 0
	bi := int(b[2] >> 4)
	if h.Version == MPEG1 {
		h.Bitrate = bitratesV1[h.Layer-1][bi]
	} else {
		h.Bitrate = bitratesV2[h.Layer-1][bi]
	}
	if h.Bitrate < 0 {
		return FrameHeader{}, fmt.Errorf("%w: bad bitrate index", ErrNoFrameHeader)
	}
	si := int(b[2]>>2) & 3
	if si == 3 {
		return FrameHeader{}, fmt.Errorf("%w: reserved sample rate", ErrNoFrameHeader)
	}
	h.SampleRate = sampleRates[h.Version][si]
	h.Padding = b[2]&2 != 0
	h.Mode = ChannelMode(b[3] >> 6)
	if b[3]&3 == 2 && !anyEmphasis {
		return FrameHeader{}, fmt.Errorf("%w: reserved emphasis", ErrNoFrameHeader)
	}
	pad := 0
	if h.Padding {
		pad = 1
	}
	switch {
	case h.Layer == 1:
		h.SamplesPerFrame = 384
		h.Length = (12*h.Bitrate*1000/h.SampleRate + pad) * 4
	case h.Layer == 2 || h.Version == MPEG1:
		h.SamplesPerFrame = 1152
		h.Length = 144*h.Bitrate*1000/h.SampleRate + pad
	default: // Layer III LSF
		h.SamplesPerFrame = 576
		h.Length = 72*h.Bitrate*1000/h.SampleRate + pad
	}
	if h.Bitrate == 0 {
		h.Length = 0
	}
	return h, nil
}

// MainDataBegin reads a Layer III frame's main_data_begin from frame (the
// frame's first bytes): how far before this frame its audio data starts,
// in the bit reservoir the frames before it filled. A stream whose first
// frame says more than 0 was cut out of a longer one; decoders output
// silence until the reservoir holds what a frame needs. ok is false for
// Layers I and II and for a frame too short to say.
func MainDataBegin(h FrameHeader, frame []byte) (n int, ok bool) {
	off := 4
	if h.Protected {
		off += 2 // the CRC comes before the side information
	}
	if h.Layer != 3 || len(frame) < off+2 {
		return 0, false
	}
	if h.Version == MPEG1 {
		return int(frame[off])<<1 | int(frame[off+1]>>7), true // 9 bits
	}
	return int(frame[off]), true // 8 bits
}
