package webui

import (
	_ "embed"
	"net/http"
)

// openapiSpec describes every route of routes(), with the scope each
// needs in x-moh-scope.
//
//go:embed assets/openapi.json
var openapiSpec []byte

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(openapiSpec)
}
