package webui

// The programme endpoints: playlists, the weekly schedule and the
// override (internal/programme holds the model, its validation and the
// state files).

import (
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mohproject/moh/internal/programme"
)

// Programme is what the programme endpoints need: the store of
// playlists, schedule and override, and what plays now.
type Programme interface {
	Store() *programme.Store
	Current() programme.Programme
}

var errNoProgramme = errorf(http.StatusServiceUnavailable, "no_programme", "the programme is not available")

func (s *Server) programme(w http.ResponseWriter, r *http.Request) (*programme.Store, bool) {
	if s.opt.Programme == nil {
		s.writeError(w, r, errNoProgramme)
		return nil, false
	}
	return s.opt.Programme.Store(), true
}

// programmeBody starts a programme change: the store, and the request's
// JSON body decoded into v. false means the refusal has been written.
func (s *Server) programmeBody(w http.ResponseWriter, r *http.Request, v any) (*programme.Store, bool) {
	st, ok := s.programme(w, r)
	if !ok {
		return nil, false
	}
	if err := decodeJSON(w, r, v); err != nil {
		s.writeError(w, r, err)
		return nil, false
	}
	return st, true
}

// programmeError maps a refused programme change onto the API's error
// shape; anything else (a failed save) goes through statusFor.
func programmeError(err error) error {
	var pe *programme.Error
	if !errors.As(err, &pe) {
		return err
	}
	st := http.StatusBadRequest
	switch pe.Kind {
	case programme.KindNotFound:
		st = http.StatusNotFound
	case programme.KindConflict:
		st = http.StatusConflict
	}
	return errorf(st, pe.Code, pe.Message)
}

func (s *Server) clock() time.Time {
	if s.opt.Now != nil {
		return s.opt.Now()
	}
	return time.Now()
}

type playlistList struct {
	Playlists []programme.Playlist `json:"playlists"`
}

func (s *Server) listPlaylists(w http.ResponseWriter, r *http.Request) {
	st, ok := s.programme(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, playlistList{Playlists: st.Playlists()})
}

func (s *Server) createPlaylist(w http.ResponseWriter, r *http.Request) {
	var p programme.Playlist
	st, ok := s.programmeBody(w, r, &p)
	if !ok {
		return
	}
	if err := st.PutPlaylist(p, true); err != nil {
		s.writeError(w, r, programmeError(err))
		return
	}
	s.record(r, "playlist "+p.Name+" created", "tracks", len(p.Tracks))
	got, _ := st.Playlist(p.Name)
	w.Header().Set("Location", "/api/v1/playlists/"+p.Name)
	writeJSON(w, http.StatusCreated, got)
}

func (s *Server) getPlaylist(w http.ResponseWriter, r *http.Request) {
	st, ok := s.programme(w, r)
	if !ok {
		return
	}
	p, found := st.Playlist(chi.URLParam(r, "name"))
	if !found {
		s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "no such playlist"))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) putPlaylist(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	var p programme.Playlist
	st, ok := s.programmeBody(w, r, &p)
	if !ok {
		return
	}
	if p.Name == "" {
		p.Name = name
	}
	if p.Name != name {
		s.writeError(w, r, errorf(http.StatusBadRequest, "bad_request", "the body names playlist "+p.Name+" but the path names "+name))
		return
	}
	if err := st.PutPlaylist(p, false); err != nil {
		s.writeError(w, r, programmeError(err))
		return
	}
	s.record(r, "playlist "+name+" saved", "tracks", len(p.Tracks))
	got, _ := st.Playlist(name)
	writeJSON(w, http.StatusOK, got)
}

func (s *Server) deletePlaylist(w http.ResponseWriter, r *http.Request) {
	st, ok := s.programme(w, r)
	if !ok {
		return
	}
	name := chi.URLParam(r, "name")
	if err := st.DeletePlaylist(name, s.clock()); err != nil {
		s.writeError(w, r, programmeError(err))
		return
	}
	s.record(r, "playlist "+name+" deleted")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) {
	st, ok := s.programme(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, st.Schedule())
}

func (s *Server) putSchedule(w http.ResponseWriter, r *http.Request) {
	var sc programme.Schedule
	st, ok := s.programmeBody(w, r, &sc)
	if !ok {
		return
	}
	if err := st.PutSchedule(sc); err != nil {
		s.writeError(w, r, programmeError(err))
		return
	}
	s.record(r, "schedule saved", "rules", len(sc.Rules), "exceptions", len(sc.Exceptions))
	writeJSON(w, http.StatusOK, st.Schedule())
}

func (s *Server) getOverride(w http.ResponseWriter, r *http.Request) {
	st, ok := s.programme(w, r)
	if !ok {
		return
	}
	o := st.Override(s.clock())
	if o == nil {
		s.writeError(w, r, errorf(http.StatusNotFound, "no_override", "no override is in force"))
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *Server) putOverride(w http.ResponseWriter, r *http.Request) {
	var o programme.Override
	st, ok := s.programmeBody(w, r, &o)
	if !ok {
		return
	}
	now := s.clock()
	if err := st.PutOverride(o, now); err != nil {
		s.writeError(w, r, programmeError(err))
		return
	}
	what := "playlist " + o.Playlist
	if o.Track != "" {
		what = "track " + o.Track
	}
	s.record(r, "override: "+what)
	writeJSON(w, http.StatusOK, st.Override(now))
}

func (s *Server) deleteOverride(w http.ResponseWriter, r *http.Request) {
	st, ok := s.programme(w, r)
	if !ok {
		return
	}
	if _, err := st.ClearOverride(s.clock()); err != nil {
		s.writeError(w, r, programmeError(err))
		return
	}
	s.record(r, "override cleared")
	w.WriteHeader(http.StatusNoContent)
}
