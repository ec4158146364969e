package programme

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
)

// The state files in the data dir. Each is written only when the admin
// changes it (and once at the first start, for the migration), never by
// steady playback.
const (
	PlaylistsFile = "playlists.json"
	ScheduleFile  = "schedule.json"
	OverrideFile  = "override.json"
)

// DefaultTimezone is the zone of a box whose admin set no schedule yet.
const DefaultTimezone = "UTC"

// Store holds the playlists, the schedule and the override, validated,
// and keeps them on disk atomically.
type Store struct {
	dir     string
	known   func(id string) bool
	changes chan struct{}

	// mu is held across the disk write, so changes are saved in the order
	// they are made live; playback never takes it (the engine reads a
	// snapshot).
	mu        sync.Mutex
	playlists map[string]Playlist
	schedule  Schedule
	override  *Override
}

// Open loads the state from dir. On the first start (no playlists file)
// the library order becomes the playlist "default", and is saved, so
// nothing the admin ordered before is lost. known reports whether a track
// id is in the library.
func Open(dir string, libraryOrder []string, known func(id string) bool) (*Store, error) {
	s := &Store{dir: dir, known: known, changes: make(chan struct{}, 1),
		playlists: map[string]Playlist{},
		schedule:  Schedule{Timezone: DefaultTimezone, Default: DefaultPlaylist, Rules: []Rule{}, Exceptions: []Exception{}},
	}
	var lists []Playlist
	switch found, err := readOptional(filepath.Join(dir, PlaylistsFile), &lists); {
	case err != nil:
		return nil, err
	case !found:
		lists = []Playlist{{Name: DefaultPlaylist, Tracks: append([]string{}, libraryOrder...)}}
		if err := s.writeJSON(PlaylistsFile, lists); err != nil {
			return nil, fmt.Errorf("migrate the library order to the playlist %q: %w", DefaultPlaylist, err)
		}
	}
	for _, p := range lists {
		if p.Tracks == nil {
			p.Tracks = []string{}
		}
		s.playlists[p.Name] = p
	}
	if _, ok := s.playlists[DefaultPlaylist]; !ok {
		s.playlists[DefaultPlaylist] = Playlist{Name: DefaultPlaylist, Tracks: append([]string{}, libraryOrder...)}
	}
	var sched Schedule
	switch found, err := readOptional(filepath.Join(dir, ScheduleFile), &sched); {
	case err != nil:
		return nil, err
	case found:
		if _, err := compile(sched); err != nil {
			return nil, fmt.Errorf("%s: %w", ScheduleFile, err)
		}
		s.schedule = normalise(sched)
	}
	var o Override
	switch found, err := readOptional(filepath.Join(dir, OverrideFile), &o); {
	case err != nil:
		return nil, err
	case found:
		s.override = &o
	}
	return s, nil
}

func normalise(s Schedule) Schedule {
	if s.Rules == nil {
		s.Rules = []Rule{}
	}
	if s.Exceptions == nil {
		s.Exceptions = []Exception{}
	}
	for i := range s.Rules {
		if s.Rules[i].Days == nil {
			s.Rules[i].Days = []string{}
		}
	}
	return s
}

// readOptional reads a state file that need not exist: none is there
// before the admin first sets it (or, for the playlists, before the
// migration), which is found = false and no error.
func readOptional(path string, v any) (found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return true, nil
}

func (s *Store) writeJSON(name string, v any) error {
	return atomicfile.WriteJSON(filepath.Join(s.dir, name), v, 0o640)
}

// Changes is signalled after every change the engine must apply.
func (s *Store) Changes() <-chan struct{} { return s.changes }

func (s *Store) notify() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// Playlists returns every playlist, sorted by name.
func (s *Store) Playlists() []Playlist {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedLocked()
}

func (s *Store) sortedLocked() []Playlist {
	out := make([]Playlist, 0, len(s.playlists))
	for _, p := range s.playlists {
		out = append(out, clonePlaylist(p))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func clonePlaylist(p Playlist) Playlist {
	p.Tracks = append([]string{}, p.Tracks...)
	if p.Message != nil {
		m := *p.Message
		p.Message = &m
	}
	return p
}

// Playlist returns one playlist.
func (s *Store) Playlist(name string) (Playlist, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.playlists[name]
	return clonePlaylist(p), ok
}

// Schedule returns the schedule.
func (s *Store) Schedule() Schedule {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneSchedule(s.schedule)
}

func cloneSchedule(sc Schedule) Schedule {
	sc.Rules = slices.Clone(sc.Rules)
	for i := range sc.Rules {
		sc.Rules[i].Days = slices.Clone(sc.Rules[i].Days)
	}
	sc.Exceptions = slices.Clone(sc.Exceptions)
	return normalise(sc)
}

// Override returns the override in force at now, or nil.
func (s *Store) Override(now time.Time) *Override {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.override.Active(now) {
		return nil
	}
	o := *s.override
	return &o
}

func (s *Store) validPlaylist(p Playlist) error {
	if !ValidName(p.Name) {
		return invalid("a playlist name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit; got %q", p.Name)
	}
	seen := map[string]bool{}
	for _, id := range p.Tracks {
		if !s.known(id) {
			return unknownTrack(id)
		}
		if seen[id] {
			return invalid("playlist %q lists track %q twice", p.Name, id)
		}
		seen[id] = true
	}
	if m := p.Message; m != nil {
		if !s.known(m.Track) {
			return unknownTrack(m.Track)
		}
		if m.EveryMinutes < 1 || m.EveryMinutes > 24*60 {
			return invalid("message every_minutes must be 1 to 1440, got %d", m.EveryMinutes)
		}
	}
	return nil
}

// PutPlaylist creates or replaces a playlist. create refuses an existing
// name (POST); otherwise the name must exist (PUT) unless it is new.
func (s *Store) PutPlaylist(p Playlist, create bool) error {
	if p.Tracks == nil {
		p.Tracks = []string{}
	}
	if err := s.validPlaylist(p); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.playlists[p.Name]; ok && create {
		return &Error{Kind: KindConflict, Code: "exists", Message: fmt.Sprintf("playlist %q exists; PUT /api/v1/playlists/%s replaces it", p.Name, p.Name)}
	}
	next := maps(s.playlists)
	next[p.Name] = clonePlaylist(p)
	return s.commitPlaylistsLocked(next)
}

func maps(m map[string]Playlist) map[string]Playlist {
	out := make(map[string]Playlist, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (s *Store) commitPlaylistsLocked(next map[string]Playlist) error {
	old := s.playlists
	s.playlists = next
	if err := s.writeJSON(PlaylistsFile, s.sortedLocked()); err != nil {
		s.playlists = old
		return fmt.Errorf("save playlists: %w", err)
	}
	s.notify()
	return nil
}

// DeletePlaylist removes a playlist the schedule and the override do not
// use.
func (s *Store) DeletePlaylist(name string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.playlists[name]; !ok {
		return &Error{Kind: KindNotFound, Code: "not_found", Message: fmt.Sprintf("there is no playlist %q", name)}
	}
	if name == DefaultPlaylist {
		return &Error{Kind: KindConflict, Code: "in_use", Message: "the playlist default cannot be deleted: it is where new uploads go and what the old playlist API edits"}
	}
	if slices.Contains(s.schedule.playlistsUsed(), name) {
		return &Error{Kind: KindConflict, Code: "in_use", Message: fmt.Sprintf("the schedule uses playlist %q; change the schedule first", name)}
	}
	if s.override.Active(now) && s.override.Playlist == name {
		return &Error{Kind: KindConflict, Code: "in_use", Message: fmt.Sprintf("the override plays playlist %q; clear it first", name)}
	}
	next := maps(s.playlists)
	delete(next, name)
	return s.commitPlaylistsLocked(next)
}

// PutSchedule validates and saves a schedule.
func (s *Store) PutSchedule(sc Schedule) error {
	if _, err := compile(sc); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range sc.playlistsUsed() {
		if _, ok := s.playlists[name]; !ok {
			return unknownPlaylist(name)
		}
	}
	sc = cloneSchedule(sc)
	if err := s.writeJSON(ScheduleFile, sc); err != nil {
		return fmt.Errorf("save schedule: %w", err)
	}
	s.schedule = sc
	s.notify()
	return nil
}

// PutOverride validates and saves an override: exactly one of a track
// and a playlist, ending in the future if it ends.
func (s *Store) PutOverride(o Override, now time.Time) error {
	switch {
	case (o.Track == "") == (o.Playlist == ""):
		return invalid(`an override is {"track":id} or {"playlist":name}, with an optional "until"`)
	case o.Until != nil && !o.Until.After(now):
		return invalid("until (%s) is not in the future", o.Until.Format(time.RFC3339))
	case o.Track != "" && !s.known(o.Track):
		return unknownTrack(o.Track)
	}
	o.Set = now.UTC().Truncate(time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.playlists[o.Playlist]; o.Playlist != "" && !ok {
		return unknownPlaylist(o.Playlist)
	}
	if err := s.writeJSON(OverrideFile, o); err != nil {
		return fmt.Errorf("save override: %w", err)
	}
	s.override = &o
	s.notify()
	return nil
}

// ClearOverride removes the override; it reports whether there was one
// in force.
func (s *Store) ClearOverride(now time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.override == nil {
		return false, nil
	}
	was := s.override.Active(now)
	if err := os.Remove(filepath.Join(s.dir, OverrideFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("clear override: %w", err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return false, err
	}
	s.override = nil
	s.notify()
	return was, nil
}

// SyncLibrary follows a change of the library: a deleted track leaves
// every playlist, message and override; a new track joins the playlist
// default (an upload plays, as before playlists existed); and a pure
// reorder of the library (the old PUT /api/v1/playlist) becomes the
// order of default. It writes only when something changed.
func (s *Store) SyncLibrary(order []string, prevOrder []string) error {
	return s.syncLibrary(order, prevOrder, prevOrder != nil)
}

// SyncAtStart follows what changed in the library while mohd was down:
// deleted tracks leave, and a track no playlist, message or override
// names (a file copied in) joins default. The order of default is kept:
// only a live reorder through the old API changes it.
func (s *Store) SyncAtStart(order []string) error {
	return s.syncLibrary(order, s.Referenced(), false)
}

func (s *Store) syncLibrary(order []string, prevOrder []string, reorder bool) error {
	in := map[string]bool{}
	for _, id := range order {
		in[id] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := maps(s.playlists)
	changed := false
	for name, p := range next {
		p = clonePlaylist(p)
		kept := p.Tracks[:0]
		for _, id := range p.Tracks {
			if in[id] {
				kept = append(kept, id)
			}
		}
		if len(kept) != len(p.Tracks) {
			p.Tracks, changed = kept, true
		}
		if p.Message != nil && !in[p.Message.Track] {
			p.Message, changed = nil, true
		}
		next[name] = p
	}
	def := next[DefaultPlaylist]
	wasIn := map[string]bool{}
	for _, id := range prevOrder {
		wasIn[id] = true
	}
	for _, id := range order {
		if !wasIn[id] && !slices.Contains(def.Tracks, id) {
			def.Tracks, changed = append(def.Tracks, id), true
		}
	}
	if reorder && sameSet(order, prevOrder) && !slices.Equal(order, prevOrder) && sameSet(order, def.Tracks) {
		def.Tracks, changed = append([]string{}, order...), true
	}
	next[DefaultPlaylist] = def
	if s.override != nil && s.override.Track != "" && !in[s.override.Track] {
		s.override = nil
		if err := os.Remove(filepath.Join(s.dir, OverrideFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := atomicfile.SyncDir(s.dir); err != nil {
			return err
		}
		s.notify()
	}
	if !changed {
		return nil
	}
	return s.commitPlaylistsLocked(next)
}

// Referenced lists every track id a playlist, a message or the override
// names: at start, the tracks mohd already knew, so only a file added
// while it was down joins default (not one the admin took out of it).
func (s *Store) Referenced() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.playlists {
		out = append(out, p.Tracks...)
		if p.Message != nil {
			out = append(out, p.Message.Track)
		}
	}
	if s.override != nil && s.override.Track != "" {
		out = append(out, s.override.Track)
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}
