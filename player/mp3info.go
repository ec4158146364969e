package player

// This file says which MP3s the direct backend may play. The parsing is
// internal/mp3's; what go-mp3 and the 44.1 kHz sink can take is decided
// here.

import (
	"errors"
	"fmt"

	"github.com/mohproject/moh/internal/mp3"
)

// MP3Info is what the direct backend knows of an MP3 before decoding it:
// the first frame's format and the Xing/Info and LAME tag (see mp3.Info).
type MP3Info = mp3.Info

// CheckPlayable returns why the direct backend must not play a file, or
// nil. go-mp3 decodes only MPEG-1 Layer III correctly, and the sink runs
// at 44.1 kHz with no resampler, so anything else is refused rather than
// played garbled or at the wrong pitch.
func CheckPlayable(info MP3Info) error {
	switch {
	case info.Layer != 3:
		return fmt.Errorf("%s Layer %s is not supported (only MPEG-1 Layer III); re-encode to MPEG-1 Layer III 44.1 kHz — the library does this on upload",
			info.Version, [...]string{"?", "I", "II", "III"}[info.Layer&3])
	case info.Version == mp3.MPEG2:
		return fmt.Errorf("MPEG-2 LSF at %d Hz: go-mp3 decodes MPEG-2 Layer III incorrectly (garbled); re-encode to MPEG-1 44.1 kHz — the library does this on upload", info.SampleRate)
	case info.Version == mp3.MPEG25:
		return fmt.Errorf("MPEG-2.5 at %d Hz is not supported by the decoder; re-encode to MPEG-1 44.1 kHz — the library does this on upload", info.SampleRate)
	case info.FreeFormat:
		return errors.New("free-format bitrate is not supported by the decoder; re-encode to MPEG-1 44.1 kHz — the library does this on upload")
	case info.SampleRate != SampleRate:
		return fmt.Errorf("sample rate %d Hz: the direct output runs at 44.1 kHz with no resampler; re-encode to MPEG-1 44.1 kHz — the library does this on upload", info.SampleRate)
	}
	return nil
}
