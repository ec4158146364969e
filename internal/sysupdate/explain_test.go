package sysupdate

import (
	"errors"
	"fmt"
	"testing"
)

// explained is what Explain returns.
type explained struct {
	code, message string
	ok            bool
}

// Explain is what both the HTTP API and the fleet link tell an operator,
// so each refusal must keep its code and sentence, wrapped or not; the
// box's own failure is left to the caller.
func TestExplainNamesEachRefusal(t *testing.T) {
	want := map[error]explained{
		&Refused{Code: "sha256_mismatch", Reason: "sha256 mismatch"}: {"sha256_mismatch", "sha256 mismatch; nothing was installed", true},
		&BadRequest{Reason: `reboot "9": want now`}:                  {CodeBadRequest, `reboot "9": want now`, true},
		ErrBusy:                      {CodeRunning, ErrBusy.Error(), true},
		ErrOff:                       {CodeOff, ErrOff.Error(), true},
		&NoSpace{Need: 20, Free: 10}: {CodeDiskFull, "the bundle needs 20 bytes on the data partition, 10 are free; nothing was written", true},
		&DownloadError{Err: errors.New("connection refused")}:           {CodeDownload, "download: connection refused", true},
		fmt.Errorf("fetch: %w", &DownloadError{Err: errors.New("eof")}): {CodeDownload, "download: eof", true},
		errors.New("read slots: rauc died"):                             {},
	}
	for err, w := range want {
		var got explained
		got.code, got.message, got.ok = Explain(err)
		if got != w {
			t.Errorf("Explain(%v) = %+v, want %+v", err, got, w)
		}
	}
}
