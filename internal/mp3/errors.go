package mp3

import (
	"errors"
	"fmt"
)

// The parser's errors, in one place. ErrNoFrameHeader and ErrNoAudioFrame
// come wrapped with where and why; an ID3Error wraps one of the ID3 ones.
var (
	ErrNoFrameHeader = errors.New("not an MPEG audio frame header")
	ErrNoAudioFrame  = errors.New("no MPEG audio frame found")
	// ErrID3Damaged: the file starts with "ID3" but the rest of the header
	// is not an ID3v2 header (a version or revision byte of 0xFF, or a
	// size that is not syncsafe).
	ErrID3Damaged = errors.New("damaged id3v2 header")
	// ErrID3PastEnd: the tag claims to extend past the end of the file,
	// the forged header that makes naive decoders allocate hundreds of
	// megabytes.
	ErrID3PastEnd = errors.New("id3v2 tag runs past the end of the file")
)

// ID3Error says which ID3v2 tag could not be skipped, and why.
type ID3Error struct {
	Err    error    // ErrID3Damaged or ErrID3PastEnd
	Offset int64    // where the tag starts
	Header [10]byte // its header
	// Claimed is the tag's whole size as its header states it (header and
	// footer included); set with ErrID3PastEnd.
	Claimed  int64
	FileSize int64
}

func (e *ID3Error) Error() string {
	if errors.Is(e.Err, ErrID3PastEnd) {
		return fmt.Sprintf("id3v2 tag at %d claims %d bytes, past the end of the %d-byte file", e.Offset, e.Claimed, e.FileSize)
	}
	return fmt.Sprintf("damaged id3v2 header at %d (version 2.%d, size bytes % x)", e.Offset, e.Header[3], e.Header[6:10])
}

func (e *ID3Error) Unwrap() error { return e.Err }
