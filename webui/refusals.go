package webui

import (
	"net/http"

	"github.com/mohproject/moh/uploads"
)

// libraryStatus maps the library's refusals to HTTP: the code and the
// message go to the client unchanged so the admin sees the real reason.
func libraryStatus(err error) (int, string, string, bool) {
	r, ok := uploads.AsRefusal(err)
	if !ok {
		return 0, "", "", false
	}
	status := http.StatusUnprocessableEntity
	switch r.Code {
	case uploads.CodeTooLarge:
		status = http.StatusRequestEntityTooLarge
	case uploads.CodeDiskFull:
		status = http.StatusInsufficientStorage
	case uploads.CodeNotFound:
		status = http.StatusNotFound
	case uploads.CodeNotAudio, uploads.CodeUnsupportedCodec:
		status = http.StatusUnsupportedMediaType
	case uploads.CodeBadOrder:
		status = http.StatusBadRequest
	case uploads.CodeEmpty, uploads.CodeCorrupt, uploads.CodeTruncated, uploads.CodeTooShort,
		uploads.CodeTooLong, uploads.CodeDecodeFailed:
		status = http.StatusUnprocessableEntity
	}
	return status, r.Code, r.Message, true
}
