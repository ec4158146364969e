package uploads

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameBytes bounds the stored display name; file systems allow 255
// bytes per name and nobody reads more on a phone-system admin page.
const maxNameBytes = 200

// cleanName turns the name a client sent into display metadata. It is never
// used to build a path (files are stored by content id), but it must not
// carry directory parts, control characters or invalid UTF-8 into the index,
// the web page or logs.
func cleanName(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	// Clients send full paths ("C:\\music\\a.mp3", "../../x.mp3"): keep the last part.
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if len(name) > maxNameBytes {
		cut := maxNameBytes
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = name[:cut]
	}
	if name == "" || name == "." || name == ".." {
		return "untitled"
	}
	return name
}
