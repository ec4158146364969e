package mp3

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFrameHeader(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want FrameHeader
		err  string
	}{
		{"mpeg1 l3 128k 44.1 joint", []byte{0xFF, 0xFB, 0x90, 0x64},
			FrameHeader{Version: MPEG1, Layer: 3, Bitrate: 128, SampleRate: 44100, Mode: ModeJointStereo, SamplesPerFrame: 1152, Length: 417}, ""},
		{"padded", []byte{0xFF, 0xFB, 0x92, 0x64},
			FrameHeader{Version: MPEG1, Layer: 3, Bitrate: 128, SampleRate: 44100, Padding: true, Mode: ModeJointStereo, SamplesPerFrame: 1152, Length: 418}, ""},
		{"crc 320k 48k mono", []byte{0xFF, 0xFA, 0xE4, 0xC0},
			FrameHeader{Version: MPEG1, Layer: 3, Protected: true, Bitrate: 320, SampleRate: 48000, Mode: ModeMono, SamplesPerFrame: 1152, Length: 960}, ""},
		{"mpeg2 l3 32k 22.05", []byte{0xFF, 0xF3, 0x40, 0xC0},
			FrameHeader{Version: MPEG2, Layer: 3, Bitrate: 32, SampleRate: 22050, Mode: ModeMono, SamplesPerFrame: 576, Length: 104}, ""},
		{"mpeg2.5 l3 16k 8k", []byte{0xFF, 0xE3, 0x28, 0xC0},
			FrameHeader{Version: MPEG25, Layer: 3, Bitrate: 16, SampleRate: 8000, Mode: ModeMono, SamplesPerFrame: 576, Length: 144}, ""},
		{"mpeg1 l2 192k", []byte{0xFF, 0xFD, 0xA0, 0x04},
			FrameHeader{Version: MPEG1, Layer: 2, Bitrate: 192, SampleRate: 44100, Mode: ModeStereo, SamplesPerFrame: 1152, Length: 626}, ""},
		{"mpeg1 l1 448k 32k", []byte{0xFF, 0xFF, 0xE8, 0x00},
			FrameHeader{Version: MPEG1, Layer: 1, Bitrate: 448, SampleRate: 32000, Mode: ModeStereo, SamplesPerFrame: 384, Length: 672}, ""},
		{"free format", []byte{0xFF, 0xFB, 0x00, 0x64},
			FrameHeader{Version: MPEG1, Layer: 3, Bitrate: 0, SampleRate: 44100, Mode: ModeJointStereo, SamplesPerFrame: 1152, Length: 0}, ""},
		{"bad bitrate", []byte{0xFF, 0xFB, 0xF0, 0x64}, FrameHeader{}, "bad bitrate"},
		{"reserved rate", []byte{0xFF, 0xFB, 0x9C, 0x64}, FrameHeader{}, "reserved sample rate"},
		{"reserved version", []byte{0xFF, 0xEB, 0x90, 0x64}, FrameHeader{}, "reserved version"},
		{"reserved layer", []byte{0xFF, 0xF9, 0x90, 0x64}, FrameHeader{}, "reserved layer"},
		{"reserved emphasis", []byte{0xFF, 0xFB, 0x90, 0x66}, FrameHeader{}, "reserved emphasis"},
		{"no sync", []byte{0x49, 0x44, 0x33, 0x04}, FrameHeader{}, "no sync"},
		{"short", []byte{0xFF, 0xFB}, FrameHeader{}, "2 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFrameHeader(tt.b)
			if tt.err != "" {
				if err == nil || !errors.Is(err, ErrNoFrameHeader) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
