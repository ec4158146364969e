package webui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// principal is who made a request: a logged-in admin (session set) or an
// API token.
type principal struct {
	scope   Scope
	session *session
	tokenID string
}

type principalKey struct{}

func principalFrom(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// authenticate finds who sent r. A request carrying an Authorization
// header is judged by it alone, never by a cookie beside it.
func (s *Server) authenticate(r *http.Request) (principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return principal{}, errBadToken
		}
		info, found, err := s.creds.token(strings.TrimSpace(tok))
		if err != nil {
			return principal{}, err
		}
		if !found {
			return principal{}, errBadToken
		}
		markAuthenticated(r)
		return principal{scope: info.Scope, tokenID: info.ID}, nil
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := s.endSessionsIfPasswordChanged(); err != nil {
			return principal{}, err
		}
		if ss, ok := s.sessions.get(c.Value); ok {
			markAuthenticated(r)
			return principal{scope: ScopeAdmin, session: &ss}, nil
		}
	}
	return principal{}, errUnauthenticated
}

// need guards a route: the caller must be authenticated with at least
// scope, and a browser session changing state must come from this site and
// carry its CSRF token. Bearer-token requests need no CSRF token: a
// browser never attaches an Authorization header on its own.
func (s *Server) need(scope Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := s.admit(w, r, `Bearer realm="moh"`)
			if !ok {
				return
			}
			if p.session != nil && !safeMethod(r.Method) {
				if crossSite(r) {
					s.writeError(w, r, errCrossSite)
					return
				}
				if !sameSecret(r.Header.Get(csrfHeader), p.session.csrf) {
					s.writeError(w, r, errCSRF)
					return
				}
			}
			s.serveAs(next, w, r, p, scope)
		})
	}
}

// admit authenticates r for a guard (need, streamAuth): a caller not
// signed in, or with a wrong token, is refused with a challenge in the
// scheme its kind of client answers.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, challenge string) (principal, bool) {
	p, err := s.authenticate(r)
	if err != nil {
		if errors.Is(err, errUnauthenticated) || errors.Is(err, errBadToken) {
			w.Header().Set("WWW-Authenticate", challenge)
		}
		s.writeError(w, r, err)
		return principal{}, false
	}
	return p, true
}

// serveAs hands r to next as p's request if p holds scope, the last step
// of every guard; else it is refused.
func (s *Server) serveAs(next http.Handler, w http.ResponseWriter, r *http.Request, p principal, scope Scope) {
	if p.scope < scope {
		s.writeError(w, r, errScope(scope))
		return
	}
	next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// endSessionsIfPasswordChanged logs everybody out when the password file
// changed since the sessions began (`mohd passwd` after a suspected leak
// must lock out whoever knew the old password).
func (s *Server) endSessionsIfPasswordChanged() error {
	st, err := s.creds.passwordStamp()
	if err != nil {
		return fmt.Errorf("check password file: %w", err)
	}
	s.pwMu.Lock()
	defer s.pwMu.Unlock()
	if st != s.pwStamp {
		s.sessions.deleteAll()
		s.pwStamp = st
		s.log.Info("admin password changed: all sessions ended")
		s.passwordChanged(st)
	}
	return nil
}
