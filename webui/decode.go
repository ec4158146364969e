package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
)

// maxJSONBody caps JSON request bodies; the largest legitimate one is a
// playlist order of a few thousand ids.
const maxJSONBody = 1 << 20

// decodeJSON reads one JSON object into v, refusing unknown fields,
// trailing data and oversized bodies with a precise message.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "bad_request", "empty body: a JSON object is expected")
		}
		return errorf(http.StatusBadRequest, "bad_request", fmt.Sprintf("invalid JSON body: %v", err))
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "bad_request", "invalid JSON body: trailing data after the object")
	}
	return nil
}

// Bounds on an upload form beyond the body cap: what moh's page, mohctl
// and curl send is two or three parts with a short file name.
const (
	maxFormParts     = 100
	maxFileNameBytes = 4096
)

// multipartForm checks an upload's Content-Type and returns a reader over
// its parts. A body that is not multipart/form-data at all is 415; one that
// claims to be but cannot be read as such is the client's mistake, 400.
func multipartForm(r *http.Request) (*multipart.Reader, error) {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if mt != "multipart/form-data" {
		return nil, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send multipart/form-data with the audio in a field named file")
	}
	if err != nil {
		return nil, errBadMultipart("the Content-Type header is malformed: " + err.Error())
	}
	if params["boundary"] == "" {
		return nil, errBadMultipart("the multipart/form-data Content-Type has no boundary parameter")
	}
	return multipart.NewReader(r.Body, params["boundary"]), nil
}

func errBadMultipart(msg string) *apiError {
	return errorf(http.StatusBadRequest, "bad_multipart", msg)
}

// formPart checks the headers of one form part, the ones moh reads and the
// ones that would change how its bytes are read, and returns its field
// name and file name.
func formPart(p *multipart.Part) (field, filename string, err error) {
	disp, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil || disp != "form-data" {
		return "", "", errBadMultipart(`a form part has a missing or malformed Content-Disposition header; want form-data; name="file"; filename="…"`)
	}
	field = params["name"]
	if field == "" {
		return "", "", errBadMultipart("a form part's Content-Disposition has no name")
	}
	filename = params["filename"]
	if len(filename) > maxFileNameBytes {
		return "", "", errBadMultipart(fmt.Sprintf("the file name is longer than %d bytes", maxFileNameBytes))
	}
	if strings.ContainsFunc(filename, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", "", errBadMultipart("the file name contains control characters (such as NUL)")
	}
	if ct := p.Header.Get("Content-Type"); ct != "" {
		if _, _, err := mime.ParseMediaType(ct); err != nil {
			return "", "", errBadMultipart("a form part's Content-Type header is malformed: " + err.Error())
		}
	}
	// RFC 7578 deprecates transfer encodings in forms; browsers send none.
	// Decoding one quietly would hand the library other bytes than sent.
	switch cte := strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding"))); cte {
	case "", "binary", "8bit", "7bit":
	default:
		return "", "", errBadMultipart(fmt.Sprintf("Content-Transfer-Encoding %.40q is not supported: send the file as binary", cte))
	}
	return field, filename, nil
}

// bodyReadError marks an error met while reading the request body: it is
// the client's (a broken form, a cut-off or stalled transfer), whatever
// the library it passed through wraps it in.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read upload: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// formError turns an error from reading an upload form into its answer.
// Every such error is the client's doing, so none is a 500.
func formError(err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "the upload is larger than the server accepts ("+mib(mbe.Limit)+")")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errorf(http.StatusBadRequest, "bad_request", "the upload broke off before its end")
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errorf(http.StatusRequestTimeout, "timeout", "the upload stalled: nothing arrived for too long")
	}
	if errors.Is(err, io.EOF) {
		return errBadMultipart("the body ended before the form's closing boundary: is the boundary in the Content-Type the one the body uses?")
	}
	if errors.Is(err, multipart.ErrMessageTooLarge) {
		return errBadMultipart("a form part's headers are too large (over 10 MiB or 10000 lines)")
	}
	// The parser's own words help whoever wrote the client; they quote the
	// offending line, so keep them short.
	msg := err.Error()
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	return errBadMultipart("malformed multipart/form-data body: " + strings.ToValidUTF8(msg, "?"))
}

func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}
