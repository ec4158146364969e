package mp3

// This file skips the ID3v2 tags in front of the audio without believing
// the sizes they claim.

import (
	"errors"
	"fmt"
	"io"
)

// SkipID3v2 returns the offset after the ID3v2 tags at the start of a file
// of the given size, skipping at most maxTags chained tags. It stops at the
// first header that does not start with "ID3". A header that does but is
// damaged, or a tag that runs past the end, is an *ID3Error, returned with
// the offset where that tag starts; a read error is returned wrapped.
func SkipID3v2(r io.ReaderAt, size int64, maxTags int) (int64, error) {
	var off int64
	for range maxTags {
		var hdr [10]byte
		n, err := r.ReadAt(hdr[:], off)
		if n < 10 {
			if err != nil && !errors.Is(err, io.EOF) {
				return off, fmt.Errorf("read id3v2 header: %w", err)
			}
			return off, nil
		}
		if string(hdr[:3]) != "ID3" {
			return off, nil
		}
		if hdr[3] == 0xFF || hdr[4] == 0xFF || hdr[6]|hdr[7]|hdr[8]|hdr[9] >= 0x80 {
			return off, &ID3Error{Err: ErrID3Damaged, Offset: off, Header: hdr, FileSize: size}
		}
		tagSize := int64(hdr[6])<<21 | int64(hdr[7])<<14 | int64(hdr[8])<<7 | int64(hdr[9])
		total := 10 + tagSize
		if hdr[5]&0x10 != 0 { // footer present
			total += 10
		}
		if off+total > size {
			return off, &ID3Error{Err: ErrID3PastEnd, Offset: off, Header: hdr, Claimed: total, FileSize: size}
		}
		off += total
	}
	return off, nil
}
