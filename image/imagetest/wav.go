package imagetest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// wavFormat is the part of a WAV header the checks need.
type wavFormat struct {
	Channels   int
	Rate       int
	Bits       int
	DataOffset int64
}

// readWAV reads a 16-bit PCM WAV file. QEMU writes the RIFF sizes only when
// it exits cleanly, and the boot test kills it hard, so the data chunk is
// taken to run to the end of the file whatever its header says.
func readWAV(path string) (wavFormat, []int16, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return wavFormat{}, nil, fmt.Errorf("read wav: %w", err)
	}
	f, err := parseWAVHeader(b)
	if err != nil {
		return f, nil, fmt.Errorf("%s: %w", path, err)
	}
	data := b[f.DataOffset:]
	s := make([]int16, len(data)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
	}
	return f, s, nil
}

func parseWAVHeader(b []byte) (wavFormat, error) {
	var f wavFormat
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return f, errors.New("not a RIFF/WAVE file")
	}
	off := int64(12)
	for off+8 <= int64(len(b)) {
		id := string(b[off : off+4])
		size := int64(binary.LittleEndian.Uint32(b[off+4:]))
		body := off + 8
		switch id {
		case "fmt ":
			if body+16 > int64(len(b)) {
				return f, errors.New("short fmt chunk")
			}
			if tag := binary.LittleEndian.Uint16(b[body:]); tag != 1 {
				return f, fmt.Errorf("wav format tag %d, want 1 (PCM)", tag)
			}
			f.Channels = int(binary.LittleEndian.Uint16(b[body+2:]))
			f.Rate = int(binary.LittleEndian.Uint32(b[body+4:]))
			f.Bits = int(binary.LittleEndian.Uint16(b[body+14:]))
		case "data":
			if f.Channels == 0 {
				return f, errors.New("data chunk before fmt chunk")
			}
			if f.Bits != 16 {
				return f, fmt.Errorf("%d bits per sample, want 16", f.Bits)
			}
			f.DataOffset = body
			return f, nil
		}
		off = body + size + size&1
	}
	return f, errors.New("no data chunk")
}
