//go:build !mohlib

package webui

import "net/http"

// Temporary until the uploads package exports its library API.

type Library interface{}

type diskStatus struct{}

func (s *Server) diskStatus() *diskStatus { return nil }

func diskWarning(*diskStatus) string { return "" }

func (s *Server) stub(w http.ResponseWriter, r *http.Request) { s.writeError(w, r, errNoLibrary) }

func (s *Server) disk(w http.ResponseWriter, r *http.Request)         { s.stub(w, r) }
func (s *Server) listTracks(w http.ResponseWriter, r *http.Request)   { s.stub(w, r) }
func (s *Server) getTrack(w http.ResponseWriter, r *http.Request)     { s.stub(w, r) }
func (s *Server) trackAudio(w http.ResponseWriter, r *http.Request)   { s.stub(w, r) }
func (s *Server) trackPreview(w http.ResponseWriter, r *http.Request) { s.stub(w, r) }
func (s *Server) upload(w http.ResponseWriter, r *http.Request)       { s.stub(w, r) }
func (s *Server) deleteTrack(w http.ResponseWriter, r *http.Request)  { s.stub(w, r) }
func (s *Server) reorder(w http.ResponseWriter, r *http.Request)      { s.stub(w, r) }
