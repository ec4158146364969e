package uploads

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mohproject/moh/internal/atomicfile"
)

func (l *Library) previewPath(id string) string { return filepath.Join(l.prevDir, id+".wav") }

// Preview returns a WAV of the track as a caller hears it: 8 kHz mono G.711
// µ-law, band-limited to the telephone band (300-3400 Hz). It is rendered on
// first request and cached until the track is deleted.
func (l *Library) Preview(ctx context.Context, id string) (string, error) {
	t, ok := l.Get(id)
	if !ok {
		return "", notFound(id)
	}
	l.prevMu.Lock()
	defer l.prevMu.Unlock()
	if _, ok := l.Get(id); !ok { // deleted while waiting
		return "", notFound(id)
	}
	dst := l.previewPath(id)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	f, err := os.CreateTemp(l.prevDir, atomicfile.TempPrefix+"preview-*.wav")
	if err != nil {
		return "", fmt.Errorf("preview %s: %w", id, err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp) // no-op after the commit

	ctx, cancel := context.WithTimeout(ctx, l.toolBudget(t.Duration.Seconds()))
	defer cancel()
	dec := l.decoder(ctx, t.Path, "mp3")
	sox := l.tool(ctx, "sox", "-V1",
		"-t", "raw", "-r", "44100", "-e", "floating-point", "-b", "32", "-c", "2", "-",
		"-t", "wav", "-r", "8000", "-e", "u-law", "-b", "8", "-c", "1", tmp,
		"sinc", "300-3400", "rate", "-v", "8000")
	if sox.cmd.Stdin, err = dec.cmd.StdoutPipe(); err != nil {
		return "", fmt.Errorf("preview %s: %w", id, err)
	}
	if err := sox.start(); err != nil {
		return "", fmt.Errorf("preview %s: %w", id, err)
	}
	if err := dec.run(); err != nil {
		sox.cmd.Wait()
		return "", fmt.Errorf("preview %s: %w", id, l.diskFullCause(l.prevDir, err))
	}
	if err := sox.wait(); err != nil {
		return "", fmt.Errorf("preview %s: %w", id, l.diskFullCause(l.prevDir, err))
	}
	if err := fsyncFile(tmp); err != nil {
		return "", fmt.Errorf("preview %s: %w", id, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return "", fmt.Errorf("preview %s: %w", id, err)
	}
	if err := atomicfile.Commit(tmp, dst); err != nil {
		return "", fmt.Errorf("preview %s: %w", id, err)
	}
	return dst, nil
}
