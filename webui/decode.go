package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
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

func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}
