package programme

import "fmt"

// Kind is the class of a refused change; the API maps it to a status.
type Kind int

const (
	// KindInvalid is a malformed or inconsistent document (400).
	KindInvalid Kind = iota + 1
	// KindNotFound names a playlist that does not exist (404).
	KindNotFound
	// KindConflict is a change that would break what depends on it, such
	// as deleting a playlist the schedule uses (409).
	KindConflict
)

// Error is a refused change with its class and a message for the admin.
type Error struct {
	Kind    Kind
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func invalid(format string, a ...any) error {
	return &Error{Kind: KindInvalid, Code: "bad_programme", Message: fmt.Sprintf(format, a...)}
}

func unknownTrack(id string) error {
	return &Error{Kind: KindInvalid, Code: "unknown_track", Message: fmt.Sprintf("track %q is not in the library", id)}
}

func unknownPlaylist(name string) error {
	return &Error{Kind: KindInvalid, Code: "unknown_playlist", Message: fmt.Sprintf("there is no playlist %q", name)}
}
