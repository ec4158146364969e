package mp3

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestParseFindsFirstFrame(t *testing.T) {
	good := tagSpec{hdr: hdrV1Joint, id: "Info", flags: 1, frames: 2, enc: "LAME3.100", delay: 576, padding: 600}.build(t)
	// A false sync: a valid-looking header whose "next frame" is junk.
	falseSync := append([]byte{0x00, 0xFF, 0xFB, 0x90, 0x64}, bytes.Repeat([]byte{0x55}, 600)...)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name   string
		data   []byte
		offset int64
		err    string
	}{
		{"plain", good, 0, ""},
		{"id3v2", cat(id3(1000, false), good), 1010, ""},
		{"id3v2 with footer", cat(id3(100, true), good), 120, ""},
		{"two id3v2 tags", cat(id3(10, false), id3(20, false), good), 50, ""},
		{"junk and a false sync first", cat(falseSync, good), int64(len(falseSync)), ""},
		{"forged id3 size", cat([]byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f"), good), 0, "past the end"},
		{"nothing", bytes.Repeat([]byte{0}, 5000), 0, "no MPEG audio frame"},
		{"empty", nil, 0, "no MPEG audio frame"},
		{"one truncated frame", good[:200], 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := ParseInfo(tt.data)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.AudioOffset != tt.offset {
				t.Fatalf("first frame at %d, want %d", info.AudioOffset, tt.offset)
			}
		})
	}
}

func TestParseRandomBytesFindsNoFrame(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	for seed := 0; seed < 20; seed++ {
		b := make([]byte, 50_000)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		if info, err := ParseInfo(b); !errors.Is(err, ErrNoAudioFrame) {
			t.Errorf("random file %d: %+v, %v", seed, info, err)
		}
	}
}

// sniffRules are the upload sniffer's rules (uploads/sniff.go), and
// playerRules ReadInfo's: the same scan under both shows each field doing
// its one job.
var (
	sniffRules  = Search{Window: 64<<10 - 3, Follow: 2, AnyEmphasis: true, End: EndWholeFrame}
	playerRules = infoSearch
)

func TestSearchRules(t *testing.T) {
	frame := cbr(t, hdrV1Joint, 1) // 417 bytes
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	junk := bytes.Repeat([]byte{0x55}, 100)
	emph := [4]byte{0xFF, 0xFB, 0x90, 0x66} // reserved emphasis
	free := append([]byte{0xFF, 0xFB, 0x00, 0x64}, make([]byte, 600)...)
	tests := []struct {
		name          string
		data          []byte
		sniff, player int64 // where each finds the first frame; -1 none
	}{
		{"three frames", cbr(t, hdrV1Joint, 3), 0, 0},
		{"two frames at the start", cbr(t, hdrV1Joint, 2), 0, 0},
		{"two frames after junk", cat(junk, cbr(t, hdrV1Joint, 2)), 100, 100},
		{"one whole frame after junk", cat(junk, frame), 100, -1},
		{"one cut frame at the start", frame[:200], -1, 0},
		{"frame then ID3v1", cat(frame, []byte("TAG"), make([]byte, 125)), -1, 0},
		{"reserved emphasis", cbr(t, emph, 3), 0, -1},
		{"free format", cat(free, free, free), -1, 0},
		{"one follower then junk", cat(cbr(t, hdrV1Joint, 2), junk), -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				rules string
				s     Search
				want  int64
			}{{"sniff", sniffRules, tt.sniff}, {"player", playerRules, tt.player}} {
				_, pos, err := c.s.First(bytes.NewReader(tt.data), 0, int64(len(tt.data)))
				switch {
				case c.want < 0 && !errors.Is(err, ErrNoAudioFrame):
					t.Errorf("%s rules: found a frame at %d (err %v), want none", c.rules, pos, err)
				case c.want >= 0 && (err != nil || pos != c.want):
					t.Errorf("%s rules: frame at %d (err %v), want %d", c.rules, pos, err, c.want)
				}
			}
		})
	}
}

// TestSearchWindow: the window bounds where a header may start.
func TestSearchWindow(t *testing.T) {
	frames := cbr(t, hdrV1Joint, 3)
	for _, tc := range []struct {
		lead  int
		found bool
	}{{lead: 999, found: true}, {lead: 1000, found: false}} {
		data := append(make([]byte, tc.lead), frames...)
		s := Search{Window: 1000, Follow: 2}
		_, pos, err := s.First(bytes.NewReader(data), 0, int64(len(data)))
		if tc.found != (err == nil) || tc.found && pos != int64(tc.lead) {
			t.Errorf("header at %d in a 1000-byte window: pos %d, err %v", tc.lead, pos, err)
		}
		if err != nil && !strings.Contains(err.Error(), "in the first 1000 bytes after offset 0") {
			t.Errorf("error text: %v", err)
		}
	}
}

// TestSearchRealFiles: both rule sets find the first frame of what lame
// and ffmpeg write, right after the tags.
func TestSearchRealFiles(t *testing.T) {
	files := map[string][]byte{
		"lame cbr":    encode(t, 44100, "lame", "-b", "128"),
		"lame vbr":    encode(t, 44100, "lame", "-V2"),
		"lame id3v2":  encode(t, 44100, "lame", "-b", "128", "--add-id3v2", "--tt", "Hold the line"),
		"lame crc":    encode(t, 44100, "lame", "-p", "-b", "128"),
		"ffmpeg lavc": encode(t, 44100, "ffmpeg", "-c:a", "libmp3lame", "-b:a", "128k"),
	}
	for name, b := range files {
		t.Run(name, func(t *testing.T) {
			off, err := SkipID3v2(bytes.NewReader(b), int64(len(b)), 8)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []Search{sniffRules, playerRules} {
				h, pos, err := s.First(bytes.NewReader(b), off, int64(len(b)))
				if err != nil || pos != off || h.Version != MPEG1 || h.Layer != 3 || h.SampleRate != 44100 {
					t.Fatalf("%+v: %+v at %d (tags end at %d), %v", s, h, pos, off, err)
				}
			}
		})
	}
}
