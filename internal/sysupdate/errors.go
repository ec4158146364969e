package sysupdate

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrBusy means an update is already under way (downloading, installing,
// waiting for its reboot, or on trial): a second one is refused rather
// than queued, so a box never holds two bundles.
var ErrBusy = errors.New("an update is already running on this box")

// ErrOff means mohd runs with update = off (no RAUC on this image).
var ErrOff = errors.New("system updates are off on this box (update = off)")

// Refused is a bundle turned away before anything was installed. Code is
// the API's error code: "bundle_refused" (signature, corruption,
// compatible) or "sha256_mismatch".
type Refused struct {
	Code   string
	Reason string
}

func (e *Refused) Error() string { return e.Reason }

// BadRequest is a request the updater cannot act on as given (a bad URL,
// sha256 or reboot time).
type BadRequest struct{ Reason string }

func (e *BadRequest) Error() string { return e.Reason }

// NoSpace means the bundle would not fit on the data partition. It
// unwraps to ENOSPC, which the API answers with 507 disk_full.
type NoSpace struct{ Need, Free uint64 }

func (e *NoSpace) Error() string {
	return fmt.Sprintf("the bundle needs %d bytes on the data partition, %d are free", e.Need, e.Free)
}

func (e *NoSpace) Unwrap() error { return syscall.ENOSPC }

// DownloadError is a bundle URL that could not be fetched: the file
// server's or the network's failure, not the box's.
type DownloadError struct{ Err error }

func (e *DownloadError) Error() string { return "download: " + e.Err.Error() }

func (e *DownloadError) Unwrap() error { return e.Err }

// Error codes of an update that did not start, the same over the HTTP API
// and the fleet link (a refused bundle carries its own Refused.Code).
const (
	CodeBadRequest = "bad_request"
	CodeRunning    = "update_running"
	CodeOff        = "update_off"
	CodeDiskFull   = "disk_full"
	CodeDownload   = "download_failed"
)

// Explain says why an update did not start, for whoever asked: the error
// code and the sentence a person reads. ok is false for the box's own
// failure, which has no code here; the caller reports it as its own.
func Explain(err error) (code, message string, ok bool) {
	var (
		ref *Refused
		bad *BadRequest
		ns  *NoSpace
		dl  *DownloadError
	)
	switch {
	case errors.As(err, &ref):
		return ref.Code, ref.Reason + "; nothing was installed", true
	case errors.As(err, &bad):
		return CodeBadRequest, bad.Reason, true
	case errors.Is(err, ErrBusy):
		return CodeRunning, err.Error(), true
	case errors.Is(err, ErrOff):
		return CodeOff, err.Error(), true
	case errors.As(err, &ns):
		return CodeDiskFull, ns.Error() + "; nothing was written", true
	case errors.As(err, &dl):
		return CodeDownload, dl.Error(), true
	}
	return "", "", false
}
