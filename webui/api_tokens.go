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

// listedToken marks the token the request itself used, so a client
// rotating its own token knows which one to revoke.
type listedToken struct {
	TokenInfo
	Current bool `json:"current"`
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
	me := principalFrom(r.Context()).tokenID
	out := make([]listedToken, 0, len(ts))
	for _, t := range ts {
		out = append(out, listedToken{TokenInfo: t, Current: me != "" && t.ID == me})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
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
	s.adminSecurityEvent(r, "API token created: "+info.Scope.String()+" "+info.Name, "token_id", info.ID)
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
	s.adminSecurityEvent(r, "API token revoked: "+id, "token_id", id)
	w.WriteHeader(http.StatusNoContent)
}
