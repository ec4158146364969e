package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/internal/capool"
	"github.com/mohproject/moh/internal/httpsonly"
)

// errChecksum means a downloaded track did not hash to the sha256 the
// command promised; the file never reaches the library.
var errChecksum = errors.New("sha256 mismatch")

// fetchTimeout bounds one add_track download, however slow the link.
const fetchTimeout = 10 * time.Minute

// fetchClient is the default client for add_track downloads. It trusts the
// system roots and, beside them, the CA certificates in caFile: the fleet
// CA that signed the broker usually signs the company's file server too,
// and a box that trusted only the OS store would refuse it with "unknown
// authority" while a public file server kept working.
func fetchClient(caFile string) (*http.Client, error) {
	return capool.HTTPClient(caFile, fetchTimeout) // no OS store: the fleet CA alone
}

// fetchVerified downloads rawURL (https only) into a temp file in dir,
// hashing as it streams, and returns the open file positioned at its start
// only if the content has exactly the wanted sha256 and at most maxBytes.
// The caller closes and removes it. Verifying before anything is handed to
// the library means a tampered or truncated download can never be played.
func fetchVerified(ctx context.Context, client *http.Client, rawURL, wantHex, dir string, maxBytes int64) (*os.File, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("url %q: only https:// URLs are accepted", rawURL)
	}
	want, err := hex.DecodeString(strings.ToLower(wantHex))
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("sha256 %q: want 64 hex digits", wantHex)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := httpsonly.Client(client).Do(req)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download: http status %s", resp.Status)
	}
	if resp.ContentLength > maxBytes {
		return nil, fmt.Errorf("download: %d bytes exceeds the limit of %d", resp.ContentLength, maxBytes)
	}
	// The shared temp prefix lets mohd's start-up sweep remove a download
	// a power cut interrupted.
	f, err := os.CreateTemp(dir, atomicfile.TempPrefix+"fetch-*")
	if err != nil {
		return nil, fmt.Errorf("create temp: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	if n > maxBytes {
		return nil, fmt.Errorf("download: more than %d bytes", maxBytes)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return nil, fmt.Errorf("%w: got %x, want %x", errChecksum, got, want)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind: %w", err)
	}
	ok = true
	return f, nil
}
