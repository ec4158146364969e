package player

// This file reads what the direct backend must know about an MP3 before
// decoding it: the first frame's format (to refuse what go-mp3 decodes
// wrongly) and the Xing/Info + LAME tag (to trim the encoder delay and
// padding so that loops are gapless). It never allocates more than one
// frame, whatever sizes a forged file claims.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

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

// sideInfoSize is the Layer III side information size, where a Xing tag
// starts after the header.
func (h FrameHeader) sideInfoSize() int {
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

var (
	bitratesV1 = [3][16]int{
		{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, -1},
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, -1},
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, -1},
	}
	bitratesV2 = [3][16]int{
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

// Errors returned by the parser.
var (
	ErrNoFrameHeader = errors.New("not an MPEG audio frame header")
	ErrNoAudioFrame  = errors.New("no MPEG audio frame found")
)

// ParseFrameHeader decodes a 4-byte frame header.
func ParseFrameHeader(b []byte) (FrameHeader, error) {
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
	if b[3]&3 == 2 {
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

// sameStream reports whether two headers can belong to one stream: frames
// of one file share version, layer and sample rate. Used to tell a real
// first frame from a sync word that random bytes happen to contain.
func sameStream(a, b FrameHeader) bool {
	return a.Version == b.Version && a.Layer == b.Layer && a.SampleRate == b.SampleRate
}

// MP3Info describes an MP3 file as far as playback needs it.
type MP3Info struct {
	Version    MPEGVersion
	Layer      int
	SampleRate int
	Channels   int
	Mode       ChannelMode
	Bitrate    int // kbit/s: the first audio frame's, or the average for VBR with a tag
	FreeFormat bool

	// AudioOffset is where the first frame (the info frame, if any)
	// starts, after any ID3v2 tags.
	AudioOffset int64
	// SamplesPerFrame is 1152 for MPEG-1 Layer III.
	SamplesPerFrame int

	// HasInfoTag is true when the first frame is a Xing, Info or VBRI
	// frame: it carries no audio and decoders that do not know it output
	// one frame of silence for it.
	HasInfoTag bool
	InfoTag    string // "Xing", "Info", "VBRI" or ""
	Frames     int64  // audio frames after the info frame; 0 unknown
	Bytes      int64  // stream bytes per the tag; 0 unknown
	HasTOC     bool
	VBRScale   int // 0..100, -1 unknown

	// Encoder is the LAME extension's encoder string, e.g. "LAME3.100".
	Encoder string
	// Gapless is true when EncoderDelay and Padding are known, so
	// TotalSamples is the exact length of the original audio.
	Gapless      bool
	EncoderDelay int
	Padding      int
	// TotalSamples is the length in samples per channel: exact when
	// Gapless, else from the frame count, else 0.
	TotalSamples int64
	// Duration is exact when Gapless, else an estimate.
	Duration time.Duration
}

// Limits that keep a forged or broken file from costing time or memory.
const (
	maxID3Tags    = 8         // chained ID3v2 tags we skip before giving up
	maxFrameScan  = 256 << 10 // bytes searched for the first frame after tags
	maxFrameBytes = 2881      // largest frame: MPEG-2.5 Layer II, 160 kbit/s at 8 kHz, padded
	scanChunk     = 16 << 10  // read size while scanning
)

// ParseMP3Info parses an MP3 held in memory.
func ParseMP3Info(b []byte) (MP3Info, error) {
	return ReadMP3Info(bytes.NewReader(b), int64(len(b)))
}

// ReadMP3Info parses the start of an MP3 of the given size: it skips ID3v2
// tags, finds the first frame and reads an info tag there.
func ReadMP3Info(r io.ReaderAt, size int64) (MP3Info, error) {
	var info MP3Info
	off, err := skipID3v2(r, size)
	if err != nil {
		return info, err
	}
	h, off, err := findFirstFrame(r, off, size)
	if err != nil {
		return info, err
	}
	info = MP3Info{
		Version:         h.Version,
		Layer:           h.Layer,
		SampleRate:      h.SampleRate,
		Channels:        h.Channels(),
		Mode:            h.Mode,
		Bitrate:         h.Bitrate,
		FreeFormat:      h.Bitrate == 0,
		AudioOffset:     off,
		SamplesPerFrame: h.SamplesPerFrame,
		VBRScale:        -1,
	}
	n := h.Length
	if n == 0 {
		n = maxFrameBytes
	}
	frame := make([]byte, n)
	got, err := r.ReadAt(frame, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return info, fmt.Errorf("read first frame: %w", err)
	}
	frame = frame[:got]
	if h.Layer == 3 {
		parseInfoTag(&info, h, frame)
	}
	finishInfo(&info, size)
	return info, nil
}

// skipID3v2 returns the offset after any ID3v2 tags at the start. A tag
// that claims to extend past the end of the file is an error rather than
// a reason to read (or allocate) that much.
func skipID3v2(r io.ReaderAt, size int64) (int64, error) {
	var off int64
	for i := 0; i < maxID3Tags; i++ {
		var hdr [10]byte
		n, err := r.ReadAt(hdr[:], off)
		if n < 10 {
			if err != nil && !errors.Is(err, io.EOF) {
				return 0, fmt.Errorf("read id3v2 header: %w", err)
			}
			return off, nil
		}
		if string(hdr[:3]) != "ID3" || hdr[3] == 0xFF || hdr[4] == 0xFF ||
			hdr[6]|hdr[7]|hdr[8]|hdr[9] >= 0x80 {
			return off, nil
		}
		tagSize := int64(hdr[6])<<21 | int64(hdr[7])<<14 | int64(hdr[8])<<7 | int64(hdr[9])
		total := 10 + tagSize
		if hdr[5]&0x10 != 0 { // footer present
			total += 10
		}
		if off+total > size {
			return 0, fmt.Errorf("id3v2 tag at %d claims %d bytes, past the end of the %d-byte file", off, total, size)
		}
		off += total
	}
	return off, nil
}

// findFirstFrame scans from off for a frame header that the next frame
// confirms (same version, layer, rate), so that a stray 0xFFE in a tag's
// padding or in random bytes is not taken for audio.
func findFirstFrame(r io.ReaderAt, off, size int64) (FrameHeader, int64, error) {
	limit := min(size, off+maxFrameScan)
	buf := make([]byte, scanChunk+3)
	for base := off; base < limit; base += scanChunk {
		n, err := r.ReadAt(buf, base)
		if err != nil && !errors.Is(err, io.EOF) {
			return FrameHeader{}, 0, fmt.Errorf("scan for first frame: %w", err)
		}
		for i := 0; i+4 <= n && i < scanChunk; i++ {
			if buf[i] != 0xFF || buf[i+1]&0xE0 != 0xE0 {
				continue
			}
			h, err := ParseFrameHeader(buf[i : i+4])
			if err != nil {
				continue
			}
			pos := base + int64(i)
			ok, err := confirmFrame(r, h, pos, size, pos == off)
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
	return FrameHeader{}, 0, fmt.Errorf("%w in the first %d bytes after offset %d", ErrNoAudioFrame, maxFrameScan, off)
}

// confirmFrame checks that a frame at pos is followed by another of the
// same stream or by an ID3v1 tag. A frame that runs into the end of the
// file cannot be confirmed; it is accepted only where audio must start
// (atStart: right after the tags), so a truncated one-frame file is still
// recognised while a sync word near the end of random bytes is not.
func confirmFrame(r io.ReaderAt, h FrameHeader, pos, size int64, atStart bool) (bool, error) {
	if h.Length == 0 {
		return confirmFreeFormat(r, h, pos, size, atStart)
	}
	next := pos + int64(h.Length)
	if next+4 > size {
		return atStart, nil
	}
	var b [4]byte
	if _, err := r.ReadAt(b[:], next); err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read frame at %d: %w", next, err)
	}
	if string(b[:3]) == "TAG" {
		return true, nil
	}
	h2, err := ParseFrameHeader(b[:])
	return err == nil && sameStream(h, h2), nil
}

// confirmFreeFormat looks for the next free-format header within the
// largest possible frame.
func confirmFreeFormat(r io.ReaderAt, h FrameHeader, pos, size int64, atStart bool) (bool, error) {
	buf := make([]byte, maxFrameBytes+4)
	n, err := r.ReadAt(buf, pos+4)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read frame at %d: %w", pos, err)
	}
	for i := 0; i+4 <= n; i++ {
		if buf[i] != 0xFF {
			continue
		}
		if h2, err := ParseFrameHeader(buf[i : i+4]); err == nil && h2.Bitrate == 0 && sameStream(h, h2) {
			return true, nil
		}
	}
	return atStart && pos+4+int64(n) >= size, nil
}

// parseInfoTag reads a Xing/Info tag (with its LAME extension) or a VBRI
// tag from the first frame, if there is one.
func parseInfoTag(info *MP3Info, h FrameHeader, frame []byte) {
	offs := []int{4 + h.sideInfoSize()}
	if h.Protected {
		offs = append(offs, 6+h.sideInfoSize()) // some writers count the CRC
	}
	for _, off := range offs {
		if off+8 <= len(frame) {
			id := string(frame[off : off+4])
			if id == "Xing" || id == "Info" {
				parseXing(info, h, frame, off)
				return
			}
		}
	}
	const vbriOff = 4 + 32 // VBRI sits after 32 bytes regardless of mode
	if vbriOff+26 <= len(frame) && string(frame[vbriOff:vbriOff+4]) == "VBRI" {
		info.HasInfoTag = true
		info.InfoTag = "VBRI"
		info.Bytes = int64(binary.BigEndian.Uint32(frame[vbriOff+10:]))
		info.Frames = int64(binary.BigEndian.Uint32(frame[vbriOff+14:]))
		// The VBRI frame count includes the VBRI frame itself.
		if info.Frames > 0 {
			info.Frames--
		}
	}
}

func parseXing(info *MP3Info, h FrameHeader, frame []byte, off int) {
	info.HasInfoTag = true
	info.InfoTag = string(frame[off : off+4])
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
		info.Frames = int64(binary.BigEndian.Uint32(b))
	}
	if flags&2 != 0 {
		b, ok := field(4)
		if !ok {
			return
		}
		info.Bytes = int64(binary.BigEndian.Uint32(b))
	}
	if flags&4 != 0 {
		if _, ok := field(100); !ok {
			return
		}
		info.HasTOC = true
	}
	if flags&8 != 0 {
		b, ok := field(4)
		if !ok {
			return
		}
		if s := binary.BigEndian.Uint32(b); s <= 100 {
			info.VBRScale = int(s)
		}
	}
	// LAME extension: 9-byte encoder string, then at +21 the encoder
	// delay and padding, 12 bits each.
	b, ok := field(24)
	if !ok {
		return
	}
	enc := b[:9]
	if !bytes.HasPrefix(enc, []byte("LAME")) && !bytes.HasPrefix(enc, []byte("Lavf")) &&
		!bytes.HasPrefix(enc, []byte("Lavc")) && !bytes.HasPrefix(enc, []byte("L3.99")) {
		return
	}
	info.Encoder = string(bytes.TrimRight(enc, "\x00 "))
	delay := int(b[21])<<4 | int(b[22])>>4
	padding := int(b[22]&0x0F)<<8 | int(b[23])
	if info.Frames <= 0 {
		return
	}
	total := info.Frames*int64(h.SamplesPerFrame) - int64(delay) - int64(padding)
	if total <= 0 {
		return // an inconsistent tag: trust nothing in it
	}
	info.Gapless = true
	info.EncoderDelay = delay
	info.Padding = padding
	info.TotalSamples = total
}

// finishInfo derives the totals and the duration.
func finishInfo(info *MP3Info, size int64) {
	if !info.Gapless && info.Frames > 0 {
		info.TotalSamples = info.Frames * int64(info.SamplesPerFrame)
	}
	if info.InfoTag != "Info" && info.Frames > 0 && info.Bytes > 0 && info.SampleRate > 0 {
		// VBR: the average. The byte count includes the tag frame, the
		// frame count does not.
		info.Bitrate = int(info.Bytes * 8 * int64(info.SampleRate) / ((info.Frames + 1) * int64(info.SamplesPerFrame)) / 1000)
	}
	switch {
	case info.TotalSamples > 0:
		info.Duration = time.Duration(info.TotalSamples) * time.Second / time.Duration(info.SampleRate)
	case info.Bitrate > 0:
		info.Duration = time.Duration((size-info.AudioOffset)*8) * time.Millisecond / time.Duration(info.Bitrate)
	}
}

// CheckPlayable returns why the direct backend must not play a file, or
// nil. go-mp3 decodes only MPEG-1 Layer III correctly, and the sink runs
// at 44.1 kHz with no resampler, so anything else is refused rather than
// played garbled or at the wrong pitch.
func CheckPlayable(info MP3Info) error {
	switch {
	case info.Layer != 3:
		return fmt.Errorf("%s Layer %s is not supported (only MPEG-1 Layer III); re-encode to MPEG-1 Layer III 44.1 kHz — the library does this on upload",
			info.Version, [...]string{"?", "I", "II", "III"}[info.Layer&3])
	case info.Version == MPEG2:
		return fmt.Errorf("MPEG-2 LSF at %d Hz: go-mp3 decodes MPEG-2 Layer III incorrectly (garbled); re-encode to MPEG-1 44.1 kHz — the library does this on upload", info.SampleRate)
	case info.Version == MPEG25:
		return fmt.Errorf("MPEG-2.5 at %d Hz is not supported by the decoder; re-encode to MPEG-1 44.1 kHz — the library does this on upload", info.SampleRate)
	case info.FreeFormat:
		return errors.New("free-format bitrate is not supported by the decoder; re-encode to MPEG-1 44.1 kHz — the library does this on upload")
	case info.SampleRate != SampleRate:
		return fmt.Errorf("sample rate %d Hz: the direct output runs at 44.1 kHz with no resampler; re-encode to MPEG-1 44.1 kHz — the library does this on upload", info.SampleRate)
	}
	return nil
}
