package uploads

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf8"
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
	// short (partial last MPEG frame, WAV data chunk longer than the file,
	// Ogg stream without its end page).
	Truncated bool
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
	if s, ok, err := sniffMPEG(r, off, size, head); ok || err != nil {
		return s, err
	}
	code, what := describe(head, off)
	return sniffed{}, refuse(code, what)
}

// skipID3 returns the offset after any ID3v2 tags. A tag size that is not
// syncsafe or runs past the end of the file is refused: that is the forged
// header that makes naive decoders allocate hundreds of megabytes.
func skipID3(r io.ReaderAt, size int64) (int64, error) {
	var off int64
	for range maxID3Tags {
		var h [10]byte
		if n, _ := r.ReadAt(h[:], off); n < 10 || string(h[:3]) != "ID3" {
			return off, nil
		}
		if h[3] < 2 || h[3] > 4 || h[6]|h[7]|h[8]|h[9] >= 0x80 {
			return 0, refuse(CodeCorrupt, fmt.Sprintf("the file starts with a damaged ID3 tag (version 2.%d, size bytes % x are not a valid tag size)", h[3], h[6:10]))
		}
		tag := int64(h[6])<<21 | int64(h[7])<<14 | int64(h[8])<<7 | int64(h[9])
		tag += 10
		if h[5]&0x10 != 0 {
			tag += 10 // footer
		}
		if off+tag > size {
			return 0, refuse(CodeCorrupt, fmt.Sprintf("the ID3 tag claims %d bytes but the whole file has only %d: the file is damaged or cut short", tag, size))
		}
		off += tag
	}
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
		return sniffed{}, refuse(CodeTruncated, "the Ogg file is cut off inside its first page: the audio ends at 0.0 s")
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

// mpegHeader is one parsed MPEG audio frame header.
type mpegHeader struct {
	version  int // 1, 2, or 25 for MPEG-2.5
	layer    int // 1..3
	bitrate  int // kbit/s
	rate     int // Hz
	mono     bool
	crc      bool
	length   int // bytes in the frame, header included
	samples  int // per frame per channel
	versBits byte
}

var mpegBitrates = [2][3][15]int{
	{ // MPEG-1: layer I, II, III
		{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320},
	},
	{ // MPEG-2 and 2.5
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
	},
}

var mpegRates = map[byte][3]int{3: {44100, 48000, 32000}, 2: {22050, 24000, 16000}, 0: {11025, 12000, 8000}}

// parseMPEG parses a frame header; free-format and reserved values are
// rejected because a frame's length cannot then be known.
func parseMPEG(b []byte) (mpegHeader, bool) {
	if len(b) < 4 || b[0] != 0xff || b[1]&0xe0 != 0xe0 {
		return mpegHeader{}, false
	}
	vb := b[1] >> 3 & 3
	lb := b[1] >> 1 & 3
	bi := b[2] >> 4
	ri := b[2] >> 2 & 3
	if vb == 1 || lb == 0 || bi == 0 || bi == 15 || ri == 3 {
		return mpegHeader{}, false
	}
	h := mpegHeader{layer: int(4 - lb), versBits: vb, crc: b[1]&1 == 0, mono: b[3]>>6 == 3}
	switch vb {
	case 3:
		h.version = 1
	case 2:
		h.version = 2
	default:
		h.version = 25
	}
	tab := 0
	if h.version != 1 {
		tab = 1
	}
	h.bitrate = mpegBitrates[tab][h.layer-1][bi]
	h.rate = mpegRates[vb][ri]
	pad := int(b[2] >> 1 & 1)
	switch {
	case h.layer == 1:
		h.length = (12*h.bitrate*1000/h.rate + pad) * 4
		h.samples = 384
	case h.layer == 2 || h.version == 1:
		h.length = 144*h.bitrate*1000/h.rate + pad
		h.samples = 1152
	default:
		h.length = 72*h.bitrate*1000/h.rate + pad
		h.samples = 576
	}
	if h.layer == 2 {
		h.samples = 1152
	}
	return h, true
}

func (h mpegHeader) same(o mpegHeader) bool {
	return h.versBits == o.versBits && h.layer == o.layer && h.rate == o.rate
}

func (h mpegHeader) versionName() string {
	if h.version == 25 {
		return "MPEG-2.5"
	}
	return fmt.Sprintf("MPEG-%d", h.version)
}

// sniffMPEG looks for a chain of consecutive MPEG audio frames near the
// start (one valid-looking header in random bytes is common; three chained
// ones are not), then walks every frame to learn the length and whether the
// file is cut short. ok is false when the file is not MPEG audio at all.
func sniffMPEG(r io.ReaderAt, off, size int64, head []byte) (s sniffed, ok bool, err error) {
	start := -1
	var first mpegHeader
	for i := 0; i+4 <= len(head); i++ {
		if head[i] != 0xff {
			continue
		}
		h, valid := parseMPEG(head[i:])
		if !valid {
			continue
		}
		if chained(r, off+int64(i), size, h) {
			start, first = i, h
			break
		}
	}
	if start < 0 {
		return s, false, nil
	}
	pos := off + int64(start)
	s.Format = "mp3"
	if first.layer != 3 {
		s.Format = fmt.Sprintf("mp%d", first.layer)
	}
	s.SampleRate = first.rate
	s.Channels = 2
	if first.mono {
		s.Channels = 1
	}

	// A Xing/Info or VBRI frame carries the frame count (and, from LAME,
	// the encoder delay and padding) instead of audio.
	fr := make([]byte, first.length)
	n, _ := r.ReadAt(fr, pos)
	fr = fr[:n]
	xingFrames, delayPad, isInfo := parseXing(fr, first)

	br := bufio.NewReaderSize(io.NewSectionReader(r, pos, size-pos), 64<<10)
	var frames int64
	bitrates := map[int]bool{}
	for {
		b, _ := br.Peek(4)
		if len(b) < 4 {
			if len(b) > 0 && b[0] == 0xff {
				s.Truncated = true
			}
			break
		}
		h, valid := parseMPEG(b)
		if !valid || !h.same(first) {
			if t, _ := br.Peek(8); bytes.HasPrefix(t, []byte("TAG")) || bytes.HasPrefix(t, []byte("APETAGEX")) ||
				bytes.HasPrefix(t, []byte("LYRICS")) || bytes.HasPrefix(t, []byte("ID3")) {
				break // trailing tags end the audio
			}
			br.Discard(1) // junk between frames: resync
			continue
		}
		d, _ := br.Discard(h.length)
		if d < h.length {
			s.Truncated = true // the last frame is cut off
			break
		}
		frames++
		bitrates[h.bitrate] = true
	}
	if isInfo {
		frames-- // the tag frame is silence the decoder drops
	}
	audio := frames * int64(first.samples)
	if xingFrames > 0 {
		s.DeclaredSamples = max(xingFrames*int64(first.samples)-delayPad, 0)
		if frames < xingFrames {
			s.Truncated = true
		}
	}
	s.EstSeconds = float64(max(audio, s.DeclaredSamples)) / float64(first.rate)
	mode := "CBR"
	if len(bitrates) > 1 {
		mode = "VBR"
	}
	s.Detail = fmt.Sprintf("%s Layer %s, %d Hz, %s, %s", first.versionName(), [4]string{"", "I", "II", "III"}[first.layer],
		first.rate, channelsName(s.Channels), mode)
	return s, true, nil
}

// chained reports whether up to three frames follow each other from pos
// with matching headers (fewer when the file ends first).
func chained(r io.ReaderAt, pos, size int64, h mpegHeader) bool {
	for k := 0; k < 2; k++ {
		pos += int64(h.length)
		if pos+4 > size {
			return k > 0 || pos <= size
		}
		var b [4]byte
		if n, _ := r.ReadAt(b[:], pos); n < 4 {
			return false
		}
		next, ok := parseMPEG(b[:])
		if !ok || !next.same(h) {
			return false
		}
		h = next
	}
	return true
}

// parseXing reads a Xing/Info (with optional LAME extension) or VBRI header
// from the first frame.
func parseXing(fr []byte, h mpegHeader) (frames, delayPad int64, isTag bool) {
	side := 32
	switch {
	case h.version == 1 && h.mono:
		side = 17
	case h.version != 1 && !h.mono:
		side = 17
	case h.version != 1 && h.mono:
		side = 9
	}
	x := 4 + side
	if h.crc {
		x += 2
	}
	if x+8 <= len(fr) && (string(fr[x:x+4]) == "Xing" || string(fr[x:x+4]) == "Info") {
		flags := binary.BigEndian.Uint32(fr[x+4 : x+8])
		p := x + 8
		if flags&1 != 0 && p+4 <= len(fr) {
			frames = int64(binary.BigEndian.Uint32(fr[p : p+4]))
			p += 4
		}
		if flags&2 != 0 {
			p += 4
		}
		if flags&4 != 0 {
			p += 100
		}
		if flags&8 != 0 {
			p += 4
		}
		if p+24 <= len(fr) && string(fr[p:p+4]) == "LAME" {
			d := fr[p+21 : p+24]
			delay := int64(d[0])<<4 | int64(d[1])>>4
			pad := int64(d[1]&0x0f)<<8 | int64(d[2])
			delayPad = delay + pad
		}
		return frames, delayPad, true
	}
	if v := 4 + 32; v+18 <= len(fr) && string(fr[v:v+4]) == "VBRI" {
		return int64(binary.BigEndian.Uint32(fr[v+14 : v+18])), 0, true
	}
	return 0, 0, false
}
