package webui

import (
	"encoding/json"
	"errors"
	"net/http"
	"syscall"
)

// apiError is an error with the HTTP status and machine-readable code it
// should be answered with. Handlers return these (or library errors) and
// writeError turns any error into the one JSON shape the API promises.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg}
}

// Errors the auth layer answers with; kept together so the codes stay
// consistent across handlers.
var (
	errUnauthenticated = errorf(http.StatusUnauthorized, "unauthenticated", "log in or send an API token")
	errBadToken        = errorf(http.StatusUnauthorized, "invalid_token", "the API token is unknown or revoked")
	errCrossSite       = errorf(http.StatusForbidden, "cross_site", "cross-site request refused")
	errCSRF            = errorf(http.StatusForbidden, "csrf", "missing or wrong CSRF token")
	errNotFound        = errorf(http.StatusNotFound, "not_found", "no such resource")
	errNoLibrary       = errorf(http.StatusServiceUnavailable, "no_library", "the track library is not available")
	errTooManyUploads  = errorf(http.StatusTooManyRequests, "too_many_uploads", "other uploads are being processed; try again in a moment")
)

func errScope(need Scope) *apiError {
	return errorf(http.StatusForbidden, "forbidden", "this needs the "+need.String()+" scope")
}

// errorBody is the JSON error shape of every API answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// statusFor maps any error a handler may see to a status, code and message.
// It is the only place where errors become HTTP statuses.
func statusFor(err error) (int, string, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status, ae.Code, ae.Message
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, "too_large", "the request body is larger than allowed"
	}
	if s, code, msg, ok := libraryStatus(err); ok {
		return s, code, msg
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return http.StatusInsufficientStorage, "disk_full", "the box's disk is full: the change was not saved; free space (delete tracks) and try again"
	}
	return http.StatusInternalServerError, "internal", "internal error"
}

// writeError answers with the JSON error shape. Internal errors are logged
// with their detail but answered without it.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := statusFor(err)
	var ae *apiError
	if status >= 500 && !errors.As(err, &ae) {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "60")
	}
	var b errorBody
	b.Error.Code = code
	b.Error.Message = msg
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}
