package mp3

// This file puts the pieces together for a player: tags skipped, first
// frame found, info tag read, length and duration worked out.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// Info describes an MP3 file as far as playback needs it.
type Info struct {
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

// maxInfoID3Tags is how many chained ID3v2 tags ReadInfo skips before it
// gives up and looks for audio.
const maxInfoID3Tags = 8

// infoSearch is how ReadInfo finds the first frame: what go-mp3 decodes
// (free format included, so that it can be refused by name), confirmed by
// one frame or an ID3v1 tag, within 256 KiB of the tags.
var infoSearch = Search{
	Window:      256 << 10,
	Follow:      1,
	TAGConfirms: true,
	FreeFormat:  true,
	End:         EndAtStart,
}

// ParseInfo parses an MP3 held in memory.
func ParseInfo(b []byte) (Info, error) {
	return ReadInfo(bytes.NewReader(b), int64(len(b)))
}

// ReadInfo parses the start of an MP3 of the given size: it skips ID3v2
// tags, finds the first frame and reads an info tag there. A damaged ID3v2
// header ends the tags (the search for audio starts there); one that runs
// past the end of the file is an error. It never reads more than one frame
// at a time, whatever sizes a forged file claims.
func ReadInfo(r io.ReaderAt, size int64) (Info, error) {
	var info Info
	off, err := SkipID3v2(r, size, maxInfoID3Tags)
	if err != nil && !errors.Is(err, ErrID3Damaged) {
		return info, err
	}
	h, off, err := infoSearch.First(r, off, size)
	if err != nil {
		return info, err
	}
	info = Info{
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
		n = MaxFrameBytes
	}
	frame := make([]byte, n)
	got, err := r.ReadAt(frame, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return info, fmt.Errorf("read first frame: %w", err)
	}
	if h.Layer == 3 {
		t := ParseTag(h, frame[:got])
		info.HasInfoTag = t.Kind != ""
		info.InfoTag = t.Kind
		info.Frames, info.Bytes, info.HasTOC, info.VBRScale = t.Frames, t.Bytes, t.HasTOC, t.VBRScale
		info.Encoder = t.Encoder
		info.Gapless, info.EncoderDelay, info.Padding, info.TotalSamples = t.Gapless, t.EncoderDelay, t.Padding, t.TotalSamples
	}
	finishInfo(&info, size)
	return info, nil
}

// finishInfo derives the totals and the duration.
func finishInfo(info *Info, size int64) {
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
