package player

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
)

// The reboot rung survives mohd's own restarts only through two small
// files next to RebootStampPath: the stamp of the last reboot (at most one
// per 24 h) and the times of recent exit rungs (a reboot needs several).
// They are written only when the ladder reaches its top, never in steady
// playback.

const (
	rebootEvery   = 24 * time.Hour
	exitsWindow   = time.Hour
	exitsFileTail = ".exits"
)

// rebootDue reports whether the reboot rung may run now.
func (w *Watchdog) rebootDue(now time.Time) bool {
	if w.o.RebootStampPath == "" {
		w.log.Warn("reboot rung enabled without a stamp path; not rebooting")
		return false
	}
	last, err := readStamp(w.o.RebootStampPath)
	if err != nil {
		w.log.Error("read reboot stamp", "err", err)
		return false
	}
	if !last.IsZero() && now.Sub(last) < rebootEvery {
		return false
	}
	exits, err := readExits(w.o.RebootStampPath+exitsFileTail, now)
	if err != nil {
		w.log.Error("read exit record", "err", err)
		return false
	}
	return len(exits) >= w.o.RebootAfterExits
}

// reboot writes the stamp first (so a reboot loop is impossible even if
// the command half-works) and runs the reboot command.
func (w *Watchdog) reboot(now time.Time) error {
	stamp := []byte(strconv.FormatInt(now.Unix(), 10) + "\n")
	if err := atomicfile.WriteFile(w.o.RebootStampPath, stamp, 0o644); err != nil {
		return fmt.Errorf("write reboot stamp: %w", err)
	}
	_ = os.Remove(w.o.RebootStampPath + exitsFileTail)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := w.o.RebootCommand
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("reboot command: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// noteExit adds now to the record of recent exits.
func (w *Watchdog) noteExit(now time.Time) error {
	if w.o.RebootStampPath == "" {
		return nil
	}
	path := w.o.RebootStampPath + exitsFileTail
	exits, err := readExits(path, now)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, t := range append(exits, now) {
		fmt.Fprintf(&b, "%d\n", t.Unix())
	}
	if err := atomicfile.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write exit record: %w", err)
	}
	return nil
}

// readStamp returns the time in a stamp file, zero if there is none.
func readStamp(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		// A garbled stamp must not disable the rate limit forever nor
		// allow a reboot loop: treat it as a reboot just now.
		return time.Now(), nil
	}
	return time.Unix(sec, 0), nil
}

// readExits returns the exits recorded within the last exitsWindow.
func readExits(path string, now time.Time) ([]time.Time, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []time.Time
	for _, f := range strings.Fields(string(b)) {
		sec, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			continue
		}
		if t := time.Unix(sec, 0); now.Sub(t) < exitsWindow && !t.After(now) {
			out = append(out, t)
		}
	}
	return out, nil
}
