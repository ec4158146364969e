package webui

import "fmt"

// Scope is what an API token may do. Each scope includes the ones below it:
// read < operate < admin. A logged-in admin session has the admin scope.
type Scope int

const (
	ScopeNone    Scope = iota
	ScopeRead          // look: status, tracks, events, disk, previews
	ScopeOperate       // play, stop, next, volume
	ScopeAdmin         // upload, delete, reorder, tokens
)

func (s Scope) String() string {
	switch s {
	case ScopeRead:
		return "read"
	case ScopeOperate:
		return "operate"
	case ScopeAdmin:
		return "admin"
	}
	return "none"
}

// ParseScope reads "read", "operate" or "admin".
func ParseScope(s string) (Scope, error) {
	switch s {
	case "read":
		return ScopeRead, nil
	case "operate":
		return ScopeOperate, nil
	case "admin":
		return ScopeAdmin, nil
	}
	return ScopeNone, fmt.Errorf("unknown scope %q (want read, operate or admin)", s)
}

// MarshalText makes scopes read as their names in JSON.
func (s Scope) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a scope name.
func (s *Scope) UnmarshalText(b []byte) error {
	v, err := ParseScope(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
