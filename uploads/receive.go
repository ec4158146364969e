package uploads

// This file is the pipeline's first stage: the upload's bytes onto disk.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mohproject/moh/internal/atomicfile"
)

// receive streams r into a temp file in the store while hashing it and
// enforcing the size cap and the disk margin.
func (l *Library) receive(ctx context.Context, r io.Reader, report reporter) (tmp, id string, size int64, err error) {
	f, err := os.CreateTemp(l.origDir, atomicfile.TempPrefix+"upload-*")
	if err != nil {
		return "", "", 0, fmt.Errorf("receive upload: %w", err)
	}
	path := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var sinceCheck int64
	for {
		if err := ctx.Err(); err != nil {
			return "", "", 0, err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			size += int64(n)
			if size > l.opts.MaxBytes {
				return "", "", 0, refuse(CodeTooLarge, fmt.Sprintf("the file is larger than the %s limit", mib(uint64(l.opts.MaxBytes))))
			}
			h.Write(buf[:n])
			if _, err := f.Write(buf[:n]); err != nil {
				return "", "", 0, fmt.Errorf("receive upload: %w", err)
			}
			if sinceCheck += int64(n); sinceCheck >= 8<<20 {
				sinceCheck = 0
				if err := l.checkDisk(0); err != nil {
					return "", "", 0, err
				}
			}
			report("receiving", 0, size)
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return "", "", 0, fmt.Errorf("receive upload: %w", rerr)
		}
	}
	if size == 0 {
		return "", "", 0, refuse(CodeEmpty, "the file is empty")
	}
	if err := f.Sync(); err != nil {
		return "", "", 0, fmt.Errorf("receive upload: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", "", 0, fmt.Errorf("receive upload: %w", err)
	}
	return path, hex.EncodeToString(h.Sum(nil))[:idLen], size, nil
}
