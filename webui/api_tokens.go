package webui

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"
)

type createTokenReq struct {
	Scope string `json:"scope"`
	Name  string `json:"name"`
}

type createdToken struct {
	TokenInfo
	Token string `json:"token"`
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := ListTokens(s.opt.DataDir)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": ts})
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req createTokenReq
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := ParseScope(req.Scope); err != nil {
		s.writeError(w, r, errorf(http.StatusBadRequest, "bad_scope", err.Error()))
		return
	}
	if len(req.Name) > 100 {
		s.writeError(w, r, errorf(http.StatusBadRequest, "bad_name", "token name must be at most 100 bytes"))
		return
	}
	tok, info, err := CreateToken(s.opt.DataDir, req.Scope, req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.audit(r, "token create", "token_id", info.ID, "scope", info.Scope.String())
	writeJSON(w, http.StatusCreated, createdToken{TokenInfo: info, Token: tok})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if err := RevokeToken(s.opt.DataDir, id); err != nil {
		if errors.Is(err, ErrTokenNotFound) {
			s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "no token with id "+id))
			return
		}
		s.writeError(w, r, err)
		return
	}
	s.audit(r, "token revoke", "token_id", id)
	w.WriteHeader(http.StatusNoContent)
}
