package uploads

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
)

// RefusedFile is a hand-copied file the library would not take.
type RefusedFile struct {
	Name    string    `json:"name"`
	Code    string    `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
	// MovedTo is where the file now lies (MusicDir/refused/...), so it is
	// not picked up again.
	MovedTo string `json:"moved_to,omitempty"`
}

const refusedKeep = 50

type refusedLog struct {
	mu   sync.Mutex
	list []RefusedFile
}

func (r *refusedLog) add(f RefusedFile) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, f)
	if len(r.list) > refusedKeep {
		r.list = r.list[len(r.list)-refusedKeep:]
	}
}

// Refused lists the most recent hand-copied files that were refused,
// oldest first.
func (l *Library) Refused() []RefusedFile {
	l.refused.mu.Lock()
	defer l.refused.mu.Unlock()
	return append([]RefusedFile(nil), l.refused.list...)
}

// RefusedDir is the sub-folder of the music folder where refused
// hand-copied files are moved, each with a NAME.txt saying why.
const RefusedDir = "refused"

// retryAfter is how long a hand-copied file that failed for a reason not
// of its own (disk full, a tool crashed) waits before another attempt.
const retryAfter = 5 * time.Minute

type dropState struct {
	size   int64
	mtime  time.Time
	stable time.Time // when size and mtime were first seen as they are now
	failed time.Time // last failure not caused by the file itself
}

// Run first rebuilds renditions made for another loudness target, then
// watches the music folder until ctx ends. A file copied there is
// ingested once its size and mtime have not changed for SettleTime (so a
// copy in progress is never read half-way) and then removed from the
// folder: the library store keeps the original. A refused file is moved to
// MusicDir/refused with the reason beside it, so it is reported once and
// not retried in a loop.
func (l *Library) Run(ctx context.Context) error {
	tick := time.NewTicker(l.opts.PollInterval)
	defer tick.Stop()
	l.rebuildStale(ctx)
	state := map[string]*dropState{}
	for {
		l.scan(ctx, state)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func ignoredName(name string) bool {
	lower := strings.ToLower(name)
	for _, s := range []string{".part", ".partial", ".tmp", ".crdownload", ".filepart", "~", ".txt"} {
		if strings.HasSuffix(lower, s) {
			return true
		}
	}
	// Dot files are what scp, rsync and Samba write while copying.
	return strings.HasPrefix(name, ".")
}

func (l *Library) scan(ctx context.Context, state map[string]*dropState) {
	entries, err := os.ReadDir(l.opts.MusicDir)
	if err != nil {
		l.log.Warn("cannot read the music folder", "dir", l.opts.MusicDir, "err", err)
		return
	}
	now := l.opts.Now()
	present := map[string]bool{}
	var ready []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || ignoredName(name) {
			continue
		}
		fi, err := os.Stat(filepath.Join(l.opts.MusicDir, name))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		present[name] = true
		st := state[name]
		if st == nil || st.size != fi.Size() || !st.mtime.Equal(fi.ModTime()) {
			state[name] = &dropState{size: fi.Size(), mtime: fi.ModTime(), stable: now}
			continue
		}
		if now.Sub(st.stable) < l.opts.SettleTime || !st.failed.IsZero() && now.Sub(st.failed) < retryAfter {
			continue
		}
		ready = append(ready, name)
	}
	for name := range state {
		if !present[name] {
			delete(state, name)
		}
	}
	sort.Strings(ready)
	for _, name := range ready {
		if ctx.Err() != nil {
			return
		}
		if l.ingestDropped(ctx, name) {
			delete(state, name)
		} else {
			state[name].failed = l.opts.Now()
		}
	}
}

// ingestDropped ingests one hand-copied file and reports whether it is
// done with (ingested or refused and moved away).
func (l *Library) ingestDropped(ctx context.Context, name string) bool {
	path := filepath.Join(l.opts.MusicDir, name)
	f, err := os.Open(path)
	if err != nil {
		l.log.Warn("cannot open hand-copied file", "file", path, "err", err)
		return false
	}
	t, existed, err := l.Ingest(ctx, name, f, nil)
	f.Close()
	rf, refused := AsRefusal(err)
	switch {
	case err == nil:
		if err := os.Remove(path); err != nil {
			l.log.Error("track added but the copied file cannot be removed", "file", path, "err", err)
		}
		atomicfile.SyncDir(l.opts.MusicDir)
		msg := fmt.Sprintf("%s from the music folder added as track %s", name, t.ID)
		if existed {
			msg = fmt.Sprintf("%s from the music folder is already in the library as track %s", name, t.ID)
		}
		l.event("ingested", msg)
		return true
	case refused && rf.Code != CodeDiskFull:
		moved, merr := l.moveRefused(name, rf)
		if merr != nil {
			l.log.Error("cannot move refused file aside", "file", path, "err", merr)
		}
		l.refused.add(RefusedFile{Name: name, Code: rf.Code, Message: rf.Message, At: l.opts.Now().UTC(), MovedTo: moved})
		l.event("refused", fmt.Sprintf("%s from the music folder refused: %s", name, rf.Message))
		return merr == nil
	case ctx.Err() != nil:
		return false
	default:
		l.log.Error("hand-copied file not ingested, will retry later", "file", path, "err", err, "retry_in", retryAfter)
		l.event("failed", fmt.Sprintf("%s from the music folder could not be added (will retry in %s): %v", name, retryAfter, err))
		return false
	}
}

func (l *Library) event(kind, msg string) {
	if l.opts.OnEvent != nil {
		l.opts.OnEvent(kind, msg)
	}
}

// moveRefused moves a refused file into MusicDir/refused (never replacing
// an earlier one of the same name) and writes the reason next to it.
func (l *Library) moveRefused(name string, rf *Refusal) (string, error) {
	dir := filepath.Join(l.opts.MusicDir, RefusedDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, name)
	for i := 2; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			break
		}
		ext := filepath.Ext(name)
		dst = filepath.Join(dir, fmt.Sprintf("%s (%d)%s", strings.TrimSuffix(name, ext), i, ext))
	}
	if err := os.Rename(filepath.Join(l.opts.MusicDir, name), dst); err != nil {
		return "", err
	}
	atomicfile.SyncDir(l.opts.MusicDir)
	atomicfile.SyncDir(dir)
	reason := fmt.Sprintf("moh refused %s (%s): %s\n", name, rf.Code, rf.Message)
	if err := atomicfile.WriteFile(dst+".txt", []byte(reason), 0o644); err != nil {
		return dst, err
	}
	return dst, nil
}
