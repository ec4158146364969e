package mp3

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// id3 is an ID3v2.4 tag with a body of size bytes.
func id3(size int, footer bool) []byte {
	flags := byte(0)
	if footer {
		flags = 0x10
	}
	b := []byte{'I', 'D', '3', 4, 0, flags, byte(size >> 21 & 0x7F), byte(size >> 14 & 0x7F), byte(size >> 7 & 0x7F), byte(size & 0x7F)}
	b = append(b, make([]byte, size)...)
	if footer {
		b = append(b, []byte("3DI\x04\x00\x10\x00\x00\x00\x00")...)
	}
	return b
}

func TestSkipID3v2(t *testing.T) {
	audio := []byte{0xFF, 0xFB, 0x90, 0x64}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		data    []byte
		maxTags int
		off     int64
		err     error
		claimed int64
	}{
		{"no tag", audio, 8, 0, nil, 0},
		{"empty", nil, 8, 0, nil, 0},
		{"one tag", cat(id3(100, false), audio), 8, 110, nil, 0},
		{"footer", cat(id3(100, true), audio), 8, 120, nil, 0},
		{"chained", cat(id3(10, false), id3(20, false), audio), 8, 50, nil, 0},
		{"more tags than allowed", cat(id3(10, false), id3(20, false), audio), 1, 20, nil, 0},
		{"tag is the whole file", id3(5, false), 8, 15, nil, 0},
		{"future version skipped by size", cat([]byte("ID3\x05\x00\x00\x00\x00\x00\x02xx"), audio), 8, 12, nil, 0},
		{"size not syncsafe", cat([]byte("ID3\x03\x00\x00\x00\x80\x00\x00"), audio), 8, 0, ErrID3Damaged, 0},
		{"version 0xFF", cat([]byte("ID3\xff\x00\x00\x00\x00\x00\x00"), audio), 8, 0, ErrID3Damaged, 0},
		{"damaged second tag", cat(id3(10, false), []byte("ID3\x04\xff\x00\x00\x00\x00\x00"), audio), 8, 20, ErrID3Damaged, 0},
		{"forged size", cat([]byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f"), audio), 8, 0, ErrID3PastEnd, 10 + 0x0FFFFFFF},
		{"footer past the end", cat([]byte("ID3\x04\x00\x10\x00\x00\x00\x04"), audio), 8, 0, ErrID3PastEnd, 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off, err := SkipID3v2(bytes.NewReader(tt.data), int64(len(tt.data)), tt.maxTags)
			if off != tt.off {
				t.Errorf("offset %d, want %d", off, tt.off)
			}
			if tt.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *ID3Error
			if !errors.Is(err, tt.err) || !errors.As(err, &e) {
				t.Fatalf("err = %v, want an *ID3Error wrapping %v", err, tt.err)
			}
			if e.Offset != tt.off || e.Claimed != tt.claimed || e.FileSize != int64(len(tt.data)) || string(e.Header[:3]) != "ID3" {
				t.Fatalf("error fields %+v, want offset %d claimed %d", e, tt.off, tt.claimed)
			}
		})
	}
}

// TestSkipID3v2ErrorText: the player reports a forged tag with this text.
func TestSkipID3v2ErrorText(t *testing.T) {
	data := []byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f\xff\xfb\x90\x64")
	_, err := SkipID3v2(bytes.NewReader(data), int64(len(data)), 8)
	if err == nil || err.Error() != "id3v2 tag at 0 claims 268435465 bytes, past the end of the 14-byte file" {
		t.Fatalf("err = %v", err)
	}
}

type failingReader struct{}

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, io.ErrClosedPipe }

func TestSkipID3v2ReadError(t *testing.T) {
	off, err := SkipID3v2(failingReader{}, 1000, 8)
	if off != 0 || !errors.Is(err, io.ErrClosedPipe) || !strings.Contains(err.Error(), "read id3v2 header") {
		t.Fatalf("off %d, err %v", off, err)
	}
	var e *ID3Error
	if errors.As(err, &e) {
		t.Fatalf("a read error is not an *ID3Error: %v", err)
	}
}
