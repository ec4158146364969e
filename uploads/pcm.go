package uploads

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
)

// readFrames reads interleaved little-endian float32 stereo from r and
// hands whole frames to fn, so callers never see half a frame whatever
// sizes the pipe delivers.
func readFrames(r io.Reader, fn func(x []float32)) error {
	const frame = 8 // two float32
	buf := make([]byte, 64<<10)
	out := make([]float32, len(buf)/4)
	have := 0
	for {
		n, err := r.Read(buf[have:])
		have += n
		whole := have - have%frame
		if whole > 0 {
			x := out[:whole/4]
			for i := range x {
				x[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[i*4:]))
			}
			fn(x)
			copy(buf, buf[whole:have])
			have -= whole
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
