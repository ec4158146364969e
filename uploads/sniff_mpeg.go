package uploads

// This file recognises MPEG audio: the first frame confirmed by the
// frames after it, every frame walked for the length, the info tag read,
// and the parts of a stream that changes rate or channels on the way.

import (
	"fmt"
	"io"
	"math"

	"github.com/mohproject/moh/internal/mp3"
)

// mpegSearch is how the sniffer finds MPEG audio: what mpg123 decodes,
// confirmed by two more frames (one valid-looking header in random bytes
// is common; three chained ones are not), or fewer when the file ends
// first, with the whole header in the first sniffHeadBytes after the tags.
// Free format (lame --freeformat) is MPEG audio too, its frame length the
// distance between its headers; and a stream may change rate or channels
// on the way (two files joined), each part then decoded on its own.
var mpegSearch = mp3.Search{
	Window:      sniffHeadBytes - 3,
	Follow:      2,
	AnyEmphasis: true,
	FreeFormat:  true,
	Parts:       true,
	End:         mp3.EndWholeFrame,
}

// An MP3 without an info tag may lack up to 1/shortFrameShare of its last
// frame and still count as whole: decoders drop a short last frame (a few
// bytes short is a writer's slip); most of a frame missing is a file cut
// off in its middle.
const shortFrameShare = 8

// mpegPart is one run of frames of one stream in an MP3, Size bytes from
// Offset: what one decoder run reads.
type mpegPart struct {
	Offset, Size   int64
	Rate, Channels int
}

// sniffMPEG looks for a chain of consecutive MPEG audio frames near the
// start, then walks every frame to learn the length, whether the file is
// cut short and whether the stream changes on the way. ok is false when
// the file is not MPEG audio at all.
func sniffMPEG(r io.ReaderAt, off, size int64) (s sniffed, ok bool) {
	first, pos, err := mpegSearch.First(r, off, size)
	if err != nil {
		return s, false
	}
	s.Format = "mp3"
	if first.Layer != 3 {
		s.Format = fmt.Sprintf("mp%d", first.Layer)
	}
	s.SampleRate = first.SampleRate
	s.Channels = first.Channels()
	s.SamplesPerFrame = first.SamplesPerFrame

	w := mpegSearch.Walk(r, pos, size, first)
	s.Frames = w.Frames
	var declared []int64
	var est float64
	allDeclared := true
	detail := ""
	for i, p := range w.Parts {
		last := i == len(w.Parts)-1
		m := readMPEGPart(r, p, last, w)
		s.Truncated = s.Truncated || m.cut
		est += float64(max(m.audio, m.declared)) / float64(p.First.SampleRate)
		declared = append(declared, m.declared)
		allDeclared = allDeclared && m.declared > 0
		if i == 0 {
			s.MidStream = m.midStream
		} else if prev := w.Parts[i-1].First; p.First.SampleRate != prev.SampleRate || p.First.Channels() != prev.Channels() {
			detail += fmt.Sprintf(", then %d Hz %s", p.First.SampleRate, channelsName(p.First.Channels()))
		}
		s.Channels = max(s.Channels, p.First.Channels())
		start, end := p.Offset, w.End
		if i == 0 {
			start = 0 // the tags before the first frame are the decoder's to skip
		}
		if !last {
			end = w.Parts[i+1].Offset
		}
		s.Parts = append(s.Parts, mpegPart{Offset: start, Size: end - start, Rate: p.First.SampleRate, Channels: p.First.Channels()})
	}
	if allDeclared {
		// In the decoders' samples: each part's at the rate it is decoded at.
		rate := float64(s.decodeRate())
		for i, d := range declared {
			s.DeclaredSamples += int64(math.Round(float64(d) * rate / float64(w.Parts[i].First.SampleRate)))
		}
	}
	s.EstSeconds = est
	mode := "CBR"
	if w.Bitrates > 1 {
		mode = "VBR"
	}
	if first.Bitrate == 0 {
		mode = "free format"
	}
	s.Detail = fmt.Sprintf("%s Layer %s, %d Hz, %s, %s%s", first.Version, [4]string{"", "I", "II", "III"}[first.Layer],
		first.SampleRate, channelsName(first.Channels()), mode, detail)
	return s, true
}

// mpegPartInfo is what one part's frames and info tag say.
type mpegPartInfo struct {
	audio     int64 // samples per channel in the frames walked
	declared  int64 // samples per channel its info tag announces; 0 unknown
	cut       bool
	midStream bool
}

// readMPEGPart reads part p's first frame for its info tag and learns
// its length and whether it is cut short. Only the last part can end
// inside a frame (w.Missing); any part can lack frames its tag announces.
// A tagged part may lack its last frame, which decoders drop and which
// holds little but the encoder's padding; an untagged last part may lack
// a few bytes of its last frame.
func readMPEGPart(r io.ReaderAt, p mp3.Part, last bool, w mp3.Walked) mpegPartInfo {
	h := p.First
	size := h.Length
	if size == 0 {
		size = mp3.MaxFrameBytes // free format: the tag is inside the largest frame there is
	}
	fr := make([]byte, size)
	n, _ := r.ReadAt(fr, p.Offset)
	tag := mp3.ParseTag(h, fr[:n])
	var m mpegPartInfo
	frames := p.Frames
	if tag.Kind != "" {
		frames-- // the tag frame is silence the decoder drops
	}
	m.audio = frames * int64(h.SamplesPerFrame)
	if tag.Frames > 0 {
		m.declared = tag.Frames * int64(h.SamplesPerFrame)
		if tag.Gapless {
			m.declared = tag.TotalSamples
		}
		m.cut = frames+1 < tag.Frames
	} else if last && w.Missing > 0 {
		m.cut = w.Missing*shortFrameShare > w.CutLength
	}
	if mdb, ok := mp3.MainDataBegin(h, fr[:n]); ok && tag.Kind == "" && mdb > 0 {
		m.midStream = true
	}
	return m
}
