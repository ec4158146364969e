package uploads

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/mohproject/moh/internal/mp3"
)

// sniffed is what the cheap checks learned about a file before any decoder
// touches it.
type sniffed struct {
	Format     string // mp3, wav, flac, ogg: also the original's file extension
	Detail     string // human description, e.g. "MPEG-2.5 Layer III, 8000 Hz, mono"
	SampleRate int
	Channels   int
	// DeclaredSamples is the length per channel the headers promise
	// (Xing/LAME frame count, WAV data size, FLAC STREAMINFO, Ogg last
	// granule); 0 when the headers do not say.
	DeclaredSamples int64
	// EstSeconds estimates the duration from the headers or the frames
	// walked, so an over-long file is refused before it is decoded.
	EstSeconds float64
	// Truncated is set when the container itself shows the file is cut
	// short (MPEG frames missing that the info tag announces, or most of
	// the last frame; WAV data chunk longer than the file, Ogg stream
	// without its end page).
	Truncated bool

	// MPEG only. Frames is how many frames the walk found (info frames
	// included), SamplesPerFrame the first frame's.
	Frames          int64
	SamplesPerFrame int
	// MidStream: the first frame's audio data starts before it, in frames
	// the file does not have: it was cut out of a longer stream, and
	// decoders start with silence (warmup in decode.go).
	MidStream bool
	// Parts are what the decoder reads, each part on its own at its own
	// rate: more than one when the stream changes rate or channel count on
	// the way (files joined with cat). The last ends with the last whole
	// frame, so the decoder never reads the junk or cut-off frame after
	// the audio.
	Parts []mpegPart
}

const (
	sniffHeadBytes = 64 << 10 // how far past the tags a first MPEG frame may start
	maxID3Tags     = 4
)

// sniff identifies the file in r (size bytes). A non-nil error is always a
// *Refusal naming what the file is or what is wrong with it.
func sniff(r io.ReaderAt, size int64) (sniffed, error) {
	if size == 0 {
		return sniffed{}, refuse(CodeEmpty, "the file is empty")
	}
	off, err := skipID3(r, size)
	if err != nil {
		return sniffed{}, err
	}
	head := make([]byte, min(int64(sniffHeadBytes), size-off))
	n, _ := r.ReadAt(head, off)
	head = head[:n]
	if off > 0 && len(head) == 0 {
		return sniffed{}, refuse(CodeNotAudio, "the file holds only an ID3 tag and no audio")
	}
	switch {
	case bytes.HasPrefix(head, []byte("fLaC")):
		return sniffFLAC(head)
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WAVE":
		return sniffWAV(r, off, size)
	case len(head) >= 12 && string(head[:4]) == "RF64" && string(head[8:12]) == "WAVE":
		return sniffed{}, refuse(CodeUnsupportedCodec, "RF64 (64-bit WAV) is not supported; save it as a normal WAV, FLAC or MP3")
	case bytes.HasPrefix(head, []byte("OggS")):
		return sniffOgg(r, head, size)
	}
	if s, ok := sniffMPEG(r, off, size); ok {
		return s, nil
	}
	code, what := describe(head, off)
	return sniffed{}, refuse(code, what)
}

// skipID3 returns the offset after any ID3v2 tags. A tag size that is not
// syncsafe or runs past the end of the file is refused: that is the forged
// header that makes naive decoders allocate hundreds of megabytes.
func skipID3(r io.ReaderAt, size int64) (int64, error) {
	off, err := mp3.SkipID3v2(r, size, maxID3Tags)
	var e *mp3.ID3Error
	switch {
	case errors.As(err, &e) && errors.Is(err, mp3.ErrID3PastEnd):
		return 0, refuse(CodeCorrupt, fmt.Sprintf("the ID3 tag claims %d bytes but the whole file has only %d: the file is damaged or cut short", e.Claimed, size))
	case errors.As(err, &e):
		return 0, refuse(CodeCorrupt, fmt.Sprintf("the file starts with a damaged ID3 tag (version 2.%d, size bytes % x are not a valid tag size)", e.Header[3], e.Header[6:10]))
	}
	// A read error ends the tags where it happened, as a short read does:
	// the checks that follow then find what is there.
	return off, nil
}

func sniffFLAC(head []byte) (sniffed, error) {
	// fLaC, then the STREAMINFO block header (4 bytes) and body (34 bytes).
	if len(head) < 4+4+34 || head[4]&0x7f != 0 {
		return sniffed{}, refuse(CodeCorrupt, "the FLAC file has no valid STREAMINFO header")
	}
	si := head[8:]
	rate := int(si[10])<<12 | int(si[11])<<4 | int(si[12])>>4
	ch := int(si[12]>>1&7) + 1 // 3 bits: 1..8 channels
	total := int64(si[13]&0x0f)<<32 | int64(binary.BigEndian.Uint32(si[14:18]))
	if !plausibleRate(rate) {
		return sniffed{}, refuse(CodeCorrupt, fmt.Sprintf("the FLAC header is implausible (%d Hz)", rate))
	}
	s := sniffed{Format: "flac", SampleRate: rate, Channels: ch, DeclaredSamples: total,
		Detail: fmt.Sprintf("FLAC, %d Hz, %s", rate, channelsName(ch))}
	s.EstSeconds = float64(total) / float64(rate)
	return s, nil
}

func sniffWAV(r io.ReaderAt, off, size int64) (sniffed, error) {
	pos := off + 12
	var s sniffed
	var fmtSeen bool
	var blockAlign int
	for i := 0; i < 64; i++ { // a WAV has a handful of chunks; bound the walk
		var ch [8]byte
		if n, _ := r.ReadAt(ch[:], pos); n < 8 {
			break
		}
		id := string(ch[:4])
		n := int64(binary.LittleEndian.Uint32(ch[4:8]))
		body := pos + 8
		switch id {
		case "fmt ":
			var f [40]byte
			got, _ := r.ReadAt(f[:min(n, 40)], body)
			if got < 16 {
				return s, refuse(CodeCorrupt, "the WAV file's format chunk is too short")
			}
			tag := binary.LittleEndian.Uint16(f[0:2])
			if tag == 0xFFFE && got >= 26 { // WAVE_FORMAT_EXTENSIBLE: the real tag is the sub-format GUID's first two bytes
				tag = binary.LittleEndian.Uint16(f[24:26])
			}
			s.Channels = int(binary.LittleEndian.Uint16(f[2:4]))
			s.SampleRate = int(binary.LittleEndian.Uint32(f[4:8]))
			blockAlign = int(binary.LittleEndian.Uint16(f[12:14]))
			bits := int(binary.LittleEndian.Uint16(f[14:16]))
			name, ok := wavCodecs[tag]
			if !ok {
				if n, known := wavUnsupported[tag]; known {
					return s, refuse(CodeUnsupportedCodec, fmt.Sprintf("the WAV file holds %s audio, which moh does not decode; save it as PCM WAV, FLAC or MP3", n))
				}
				return s, refuse(CodeUnsupportedCodec, fmt.Sprintf("the WAV file uses codec 0x%04x, which moh does not decode; save it as PCM WAV, FLAC or MP3", tag))
			}
			if s.Channels < 1 || s.Channels > 8 || !plausibleRate(s.SampleRate) || blockAlign < 1 {
				return s, refuse(CodeCorrupt, fmt.Sprintf("the WAV header is implausible (%d channels, %d Hz)", s.Channels, s.SampleRate))
			}
			s.Detail = fmt.Sprintf("WAV %s %d-bit, %d Hz, %s", name, bits, s.SampleRate, channelsName(s.Channels))
			fmtSeen = true
		case "data":
			if !fmtSeen {
				return s, refuse(CodeCorrupt, "the WAV file has its data before its format chunk")
			}
			s.Format = "wav"
			avail := size - body
			// 0 and 0xFFFFFFFF are what streaming writers put when they
			// cannot seek back: the length is unknown, not wrong.
			if n != 0 && n != 0xFFFFFFFF {
				s.DeclaredSamples = n / int64(blockAlign)
				if n > avail {
					s.Truncated = true
				}
			} else {
				n = avail
			}
			s.EstSeconds = float64(min(n, avail)/int64(blockAlign)) / float64(s.SampleRate)
			return s, nil
		}
		pos = body + n + n&1
	}
	if !fmtSeen {
		return s, refuse(CodeCorrupt, "the WAV file has no format chunk")
	}
	return s, refuse(CodeCorrupt, "the WAV file has no audio data chunk")
}

var wavCodecs = map[uint16]string{1: "PCM", 3: "float", 6: "A-law", 7: "µ-law"}

var wavUnsupported = map[uint16]string{
	0x0002: "MS ADPCM", 0x0011: "IMA ADPCM", 0x0031: "GSM 6.10", 0x0050: "MPEG Layer II",
	0x0055: "MP3", 0x0161: "WMA", 0x00FF: "AAC", 0x1610: "AAC", 0x0064: "G.721 ADPCM",
}

func sniffOgg(r io.ReaderAt, head []byte, size int64) (sniffed, error) {
	// First page: 27-byte header, segment table, then the codec's first packet.
	if len(head) < 28 {
		return sniffed{}, refuse(CodeTruncated, "the Ogg file is cut off inside its first page, before any audio")
	}
	pkt := 27 + int(head[26])
	if pkt+30 > len(head) {
		return sniffed{}, refuse(CodeCorrupt, "the Ogg file's first page is damaged")
	}
	p := head[pkt:]
	switch {
	case bytes.HasPrefix(p, []byte("\x01vorbis")):
	case bytes.HasPrefix(p, []byte("OpusHead")):
		return sniffed{}, refuse(CodeUnsupportedCodec, "this is Ogg Opus audio, which moh does not decode; send Ogg Vorbis, MP3, WAV or FLAC")
	case bytes.HasPrefix(p, []byte("\x7fFLAC")):
		return sniffed{}, refuse(CodeUnsupportedCodec, "this is FLAC inside Ogg, which moh does not decode; send plain FLAC, MP3, WAV or Ogg Vorbis")
	case bytes.HasPrefix(p, []byte("Speex")):
		return sniffed{}, refuse(CodeUnsupportedCodec, "this is Ogg Speex audio, which moh does not decode; send Ogg Vorbis, MP3, WAV or FLAC")
	case bytes.HasPrefix(p, []byte("\x80theora")):
		return sniffed{}, refuse(CodeUnsupportedCodec, "this is an Ogg Theora video, not audio")
	default:
		return sniffed{}, refuse(CodeUnsupportedCodec, "this Ogg file holds a codec moh does not decode; send Ogg Vorbis, MP3, WAV or FLAC")
	}
	ch := int(p[11])
	rate := int(binary.LittleEndian.Uint32(p[12:16]))
	if ch < 1 || ch > 8 || !plausibleRate(rate) {
		return sniffed{}, refuse(CodeCorrupt, fmt.Sprintf("the Ogg Vorbis header is implausible (%d channels, %d Hz)", ch, rate))
	}
	s := sniffed{Format: "ogg", SampleRate: rate, Channels: ch,
		Detail: fmt.Sprintf("Ogg Vorbis, %d Hz, %s", rate, channelsName(ch))}
	// The last page tells whether the stream ended properly (EOS flag) and,
	// in its granule position, how many samples it holds.
	tail := make([]byte, min(size, 64<<10))
	tailOff := size - int64(len(tail))
	n, _ := r.ReadAt(tail, tailOff)
	tail = tail[:n]
	last := bytes.LastIndex(tail, []byte("OggS"))
	s.Truncated = true
	for last >= 0 {
		pg := tail[last:]
		if len(pg) >= 27 && len(pg) >= 27+int(pg[26]) {
			body := 0
			for _, l := range pg[27 : 27+int(pg[26])] {
				body += int(l)
			}
			complete := 27+int(pg[26])+body <= len(pg)
			if complete && pg[5]&4 != 0 {
				s.Truncated = false
				g := int64(binary.LittleEndian.Uint64(pg[6:14]))
				if g > 0 {
					s.DeclaredSamples = g
					s.EstSeconds = float64(g) / float64(rate)
				}
			}
			break
		}
		last = bytes.LastIndex(tail[:last], []byte("OggS"))
	}
	if s.EstSeconds == 0 {
		// Cut-off stream: estimate from the size at a generous 32 kbit/s.
		s.EstSeconds = float64(size) / 4000
	}
	return s, nil
}

// plausibleRate bounds the sample rates moh accepts: telephony's 8 kHz
// is the lowest anyone sends; anything outside is a damaged header.
func plausibleRate(r int) bool { return r >= 4000 && r <= 384000 }

func channelsName(n int) string {
	switch n {
	case 1:
		return "mono"
	case 2:
		return "stereo"
	}
	return fmt.Sprintf("%d channels", n)
}

// describe names what a file that is not accepted audio looks like, and
// whether that is a codec moh refuses or not audio at all.
func describe(head []byte, off int64) (code, msg string) {
	unsupported := func(what string) (string, string) {
		return CodeUnsupportedCodec, "this is " + what + ", which moh does not decode; send MP3, WAV, FLAC or Ogg Vorbis"
	}
	notAudio := func(what string) (string, string) {
		return CodeNotAudio, "this is not an audio file: it looks like " + what
	}
	h := head
	has := func(p string) bool { return bytes.HasPrefix(h, []byte(p)) }
	switch {
	case len(h) >= 12 && string(h[4:8]) == "ftyp":
		return unsupported("an MP4/M4A (AAC or ALAC) file")
	case len(h) >= 12 && has("FORM") && (string(h[8:12]) == "AIFF" || string(h[8:12]) == "AIFC"):
		return unsupported("AIFF audio")
	case has("\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
		return unsupported("a WMA/ASF file")
	case has("#!AMR"):
		return unsupported("AMR speech audio")
	case has(".snd"):
		return unsupported("Sun/NeXT .au audio")
	case len(h) >= 2 && h[0] == 0xff && h[1]&0xf6 == 0xf0:
		return unsupported("raw AAC (ADTS) audio")
	case has("MThd"):
		return notAudio("a MIDI file (notes, not recorded sound)")
	case has("PK\x03\x04"), has("PK\x05\x06"):
		return notAudio("a ZIP archive (unpack it and upload the audio files inside)")
	case has("Rar!"):
		return notAudio("a RAR archive")
	case has("7z\xbc\xaf\x27\x1c"):
		return notAudio("a 7-Zip archive")
	case has("\x1f\x8b"):
		return notAudio("gzip-compressed data")
	case has("%PDF"):
		return notAudio("a PDF document")
	case has("\x89PNG"):
		return notAudio("a PNG image")
	case has("\xff\xd8\xff"):
		return notAudio("a JPEG image")
	case has("GIF8"):
		return notAudio("a GIF image")
	case has("\x7fELF"):
		return notAudio("a program (ELF executable)")
	case has("MZ"):
		return notAudio("a Windows program or DLL")
	case has("\xd0\xcf\x11\xe0"):
		return notAudio("a Microsoft Office document")
	case has("\x1a\x45\xdf\xa3"):
		return unsupported("a Matroska/WebM file")
	}
	if off > 0 {
		return CodeNotAudio, "the file has an ID3 tag but no MP3 audio after it"
	}
	if allZero(h) {
		return notAudio("nothing but zero bytes")
	}
	if isText(h) {
		t := bytes.ToLower(bytes.TrimLeft(bytes.TrimPrefix(h, []byte("\xef\xbb\xbf")), " \t\r\n"))
		switch {
		case bytes.HasPrefix(t, []byte("<!doctype html")) || bytes.HasPrefix(t, []byte("<html")) || bytes.Contains(t[:min(len(t), 1024)], []byte("<html")):
			return notAudio("an HTML web page (perhaps an error page saved instead of the file)")
		case bytes.HasPrefix(t, []byte("<?xml")):
			return notAudio("an XML document")
		case bytes.HasPrefix(t, []byte("{")) || bytes.HasPrefix(t, []byte("[")):
			return notAudio("JSON text")
		case bytes.HasPrefix(t, []byte("#extm3u")) || bytes.HasPrefix(t, []byte("[playlist]")):
			return notAudio("a playlist (it lists files but holds no audio)")
		}
		return notAudio("plain text")
	}
	return notAudio("binary data of no known kind (random bytes?)")
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// isText reports whether b is (a prefix of) UTF-8 text without binary
// control bytes.
func isText(b []byte) bool {
	b = b[:min(len(b), 4096)]
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return len(b) < 4 // a rune cut at the end of the sample
		}
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' && r != '\f' {
			return false
		}
		b = b[n:]
	}
	return true
}
