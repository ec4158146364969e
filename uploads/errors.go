package uploads

import "errors"

// Refusal codes: stable strings that webui maps to HTTP statuses and shows
// to the admin together with the message.
const (
	CodeEmpty            = "empty"
	CodeNotAudio         = "not_audio"
	CodeCorrupt          = "corrupt"
	CodeTruncated        = "truncated"
	CodeTooShort         = "too_short"
	CodeTooLong          = "too_long"
	CodeTooLarge         = "too_large"
	CodeUnsupportedCodec = "unsupported_codec"
	CodeDecodeFailed     = "decode_failed"
	CodeDiskFull         = "disk_full"
	CodeNotFound         = "not_found"
	CodeBadOrder         = "bad_order"
)

// Refusal is an error caused by the input or the request, not by moh: the
// caller shows Message to the admin as it is.
type Refusal struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (r *Refusal) Error() string { return r.Message }

// Is makes errors.Is match any refusal with the same code, so callers can
// test errors.Is(err, ErrNotFound) whatever the message says.
func (r *Refusal) Is(target error) bool {
	t, ok := target.(*Refusal)
	return ok && t.Code == r.Code
}

func refuse(code, msg string) *Refusal { return &Refusal{Code: code, Message: msg} }

// ErrNotFound is returned (wrapped in a Refusal with a specific message)
// for an unknown track id.
var ErrNotFound = &Refusal{Code: CodeNotFound, Message: "no such track"}

// AsRefusal returns the refusal inside err, if any.
func AsRefusal(err error) (*Refusal, bool) {
	var r *Refusal
	ok := errors.As(err, &r)
	return r, ok
}
