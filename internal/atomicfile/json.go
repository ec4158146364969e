package atomicfile

import (
	"encoding/json"
	"fmt"
	"os"
)

// WriteJSON writes v as indented JSON ending in a newline, atomically:
// moh's state files (playlists, schedule, tokens, the library index, the
// update phase, mohctl's inventory) are read by people as well as by moh,
// and a power cut leaves either the old file or the new one.
func WriteJSON(path string, v any, perm os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	return WriteFile(path, append(b, '\n'), perm)
}
