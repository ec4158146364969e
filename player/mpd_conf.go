package player

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mohproject/moh/internal/atomicfile"
)

// Files mohd keeps in the MPD run directory (tmpfs on the appliance, so
// MPD's own writes never touch the flash).
const (
	mpdConfName   = "mpd.conf"
	mpdSocketName = "mpd.sock"
	mpdDBName     = "mpd.db"
	mpdLevelFIFO  = "level.fifo"
	// mpdEmptyLibrary is MPD's music_directory: deliberately empty. MPD
	// 0.23 resolves a file:// URI inside its music_directory through its
	// database ("No such song" for a track added since the last update),
	// but plays any file outside it directly (both measured). So mohd
	// adds every track by absolute file:// URI over the unix socket and
	// MPD never scans, updates or depends on its database.
	mpdEmptyLibrary = "library"
)

// The names of the two outputs of the MPD mohd owns: the line, and the
// copy mohd listens to for the level. Both must stay enabled; the
// backend treats either being disabled (by another client) as a fault.
const (
	mpdOutputName      = "moh"
	mpdLevelOutputName = "moh-level"
)

// mpdConfig is everything that goes into the mpd.conf mohd writes for the
// MPD it owns.
type mpdConfig struct {
	RunDir string
	Output Output
}

// quoteConf quotes a value for mpd.conf: MPD's config tokenizer takes a
// double-quoted string with backslash escapes.
func quoteConf(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// shellQuote quotes s for /bin/sh, which MPD's pipe output runs its
// command through.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// render returns the mpd.conf text. The queue is never saved by MPD (no
// state_file): mohd is the source of truth and rebuilds it.
func (c mpdConfig) render() (string, error) {
	if c.RunDir == "" {
		return "", fmt.Errorf("mpd config: run dir is required")
	}
	for _, p := range []string{c.RunDir, c.Output.Path, c.Output.Device} {
		if strings.ContainsAny(p, "\n\r\x00") {
			return "", fmt.Errorf("mpd config: %q contains a newline or NUL", p)
		}
	}
	var b strings.Builder
	kv := func(indent, k, v string) { fmt.Fprintf(&b, "%s%s %s\n", indent, k, quoteConf(v)) }
	b.WriteString("# Written by mohd for the MPD it owns; rewritten at every start.\n")
	kv("", "music_directory", filepath.Join(c.RunDir, mpdEmptyLibrary))
	kv("", "db_file", filepath.Join(c.RunDir, mpdDBName))
	kv("", "bind_to_address", filepath.Join(c.RunDir, mpdSocketName))
	kv("", "auto_update", "no")
	kv("", "zeroconf_enabled", "no")
	kv("", "restore_paused", "no")
	// Keep the whole queue playable as one gapless loop.
	kv("", "gapless_mp3_playback", "yes")

	b.WriteString("audio_output {\n")
	switch c.Output.Kind {
	case OutputALSA:
		kv("\t", "type", "alsa")
		kv("\t", "name", mpdOutputName)
		if c.Output.Device != "" {
			kv("\t", "device", c.Output.Device)
		}
	case OutputFile:
		// Raw s16le 44.1 kHz stereo appended to the file; the level FIFO
		// output below paces MPD in real time.
		kv("\t", "type", "pipe")
		kv("\t", "name", mpdOutputName)
		kv("\t", "command", "exec cat >> "+shellQuote(c.Output.Path))
		kv("\t", "format", "44100:16:2")
	case OutputNull, "":
		kv("\t", "type", "null")
		kv("\t", "name", mpdOutputName)
		kv("\t", "sync", "yes") // paced by a timer like a sound card
	default:
		return "", fmt.Errorf("mpd config: unknown output kind %q", c.Output.Kind)
	}
	// A software mixer so setvol works on every output kind.
	kv("\t", "mixer_type", "software")
	b.WriteString("}\n")

	// The second output is what mohd listens to: the same audio, after the
	// same software volume, so the watchdog hears what the line hears.
	// MPD's fifo output is timer-paced and drains itself when full, so it
	// never blocks MPD even if mohd stops reading.
	b.WriteString("audio_output {\n")
	kv("\t", "type", "fifo")
	kv("\t", "name", mpdLevelOutputName)
	kv("\t", "path", filepath.Join(c.RunDir, mpdLevelFIFO))
	kv("\t", "format", "44100:16:2")
	kv("\t", "mixer_type", "software")
	b.WriteString("}\n")
	return b.String(), nil
}

// write renders the config into RunDir atomically and returns its path.
func (c mpdConfig) write() (string, error) {
	text, err := c.render()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(c.RunDir, mpdEmptyLibrary), 0o755); err != nil {
		return "", fmt.Errorf("mpd library dir: %w", err)
	}
	path := filepath.Join(c.RunDir, mpdConfName)
	if err := atomicfile.WriteFile(path, []byte(text), 0o644); err != nil {
		return "", fmt.Errorf("write mpd config: %w", err)
	}
	return path, nil
}
