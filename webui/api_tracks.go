package webui

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/uploads"
)

// uploadDeadline bounds one upload request: long enough for a big file
// over a slow site link, short enough that a stalled client lets go.
const uploadDeadline = 30 * time.Minute

func (s *Server) library(w http.ResponseWriter, r *http.Request) (Library, bool) {
	if s.opt.Library == nil {
		s.writeError(w, r, errNoLibrary)
		return nil, false
	}
	return s.opt.Library, true
}

type trackList struct {
	Tracks []uploads.Track `json:"tracks"`
}

func tracksDoc(ts []uploads.Track) trackList {
	if ts == nil {
		ts = []uploads.Track{}
	}
	return trackList{Tracks: ts}
}

func (s *Server) listTracks(w http.ResponseWriter, r *http.Request) {
	lib, ok := s.library(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, tracksDoc(lib.Tracks()))
}

func (s *Server) trackOr404(w http.ResponseWriter, r *http.Request) (uploads.Track, bool) {
	lib, ok := s.library(w, r)
	if !ok {
		return uploads.Track{}, false
	}
	id := chi.URLParam(r, "id")
	t, ok := lib.Get(id)
	if !ok {
		s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "no track with id "+id))
		return uploads.Track{}, false
	}
	return t, true
}

func (s *Server) getTrack(w http.ResponseWriter, r *http.Request) {
	if t, ok := s.trackOr404(w, r); ok {
		writeJSON(w, http.StatusOK, t)
	}
}

func (s *Server) deleteTrack(w http.ResponseWriter, r *http.Request) {
	lib, ok := s.library(w, r)
	if !ok {
		return
	}
	id := chi.URLParam(r, "id")
	name := id
	if t, ok := lib.Get(id); ok {
		name = t.Name
	}
	if err := lib.Delete(id); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.record(r, "track deleted: "+name, "track", id)
	w.WriteHeader(http.StatusNoContent)
}

type orderDoc struct {
	Order []string `json:"order"`
}

func (s *Server) reorder(w http.ResponseWriter, r *http.Request) {
	lib, ok := s.library(w, r)
	if !ok {
		return
	}
	var o orderDoc
	if err := decodeJSON(w, r, &o); err != nil {
		s.writeError(w, r, err)
		return
	}
	if o.Order == nil {
		s.writeError(w, r, errorf(http.StatusBadRequest, "bad_request", `the body must be {"order":[track ids]}`))
		return
	}
	if err := lib.Reorder(o.Order); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.record(r, "playlist reordered", "tracks", len(o.Order))
	writeJSON(w, http.StatusOK, tracksDoc(lib.Tracks()))
}

func (s *Server) disk(w http.ResponseWriter, r *http.Request) {
	lib, ok := s.library(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, lib.Disk())
}

// extendDeadlines gives one request more time than the server's default
// timeouts, which are short to shed slow clients everywhere else.
func extendDeadlines(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	at := time.Now().Add(d)
	_ = rc.SetReadDeadline(at) // not supported by test recorders: fine
	_ = rc.SetWriteDeadline(at)
}

// serveFile sends a library file with Range support, for the page's
// <audio> element.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, path, name, ctype string) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			s.writeError(w, r, errorf(http.StatusNotFound, "not_found", "the track's file is missing"))
			return
		}
		s.writeError(w, r, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	extendDeadlines(w, 10*time.Minute)
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "private, max-age=0, must-revalidate")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": name}))
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

func (s *Server) trackAudio(w http.ResponseWriter, r *http.Request) {
	t, ok := s.trackOr404(w, r)
	if !ok {
		return
	}
	s.serveFile(w, r, t.Path, strings.TrimSuffix(t.Name, filepath.Ext(t.Name))+".mp3", "audio/mpeg")
}

func (s *Server) trackPreview(w http.ResponseWriter, r *http.Request) {
	t, ok := s.trackOr404(w, r)
	if !ok {
		return
	}
	path, err := s.opt.Library.Preview(r.Context(), t.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.serveFile(w, r, path, strings.TrimSuffix(t.Name, filepath.Ext(t.Name))+"-phone.wav", "audio/wav")
}

// upload streams the multipart field "file" straight into the library's
// ingest: the body is capped first, never buffered whole in memory, and the
// library checks the content itself.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	lib, ok := s.library(w, r)
	if !ok {
		return
	}
	result := "rejected"
	defer func() { s.countUpload(result) }()
	select {
	case s.upSlots <- struct{}{}:
		defer func() { <-s.upSlots }()
	default:
		w.Header().Set("Retry-After", "5")
		s.writeError(w, r, errTooManyUploads)
		return
	}
	extendDeadlines(w, uploadDeadline)
	// The rate guard sits under the body cap, so that it sees every byte
	// that arrives; it ends when the file part has been read.
	guard := s.guardRate(w, r.Body)
	defer guard.stop()
	r.Body = http.MaxBytesReader(w, guard, s.opt.MaxUploadBytes)

	id := r.Header.Get("X-Upload-Id")
	if id != "" && !uploadIDPattern.MatchString(id) {
		s.writeError(w, r, errorf(http.StatusBadRequest, "bad_upload_id", "X-Upload-Id must be 1 to 64 letters, digits, '-' or '_'"))
		return
	}
	mr, err := multipartForm(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for parts := 0; ; parts++ {
		if parts == maxFormParts {
			s.writeError(w, r, errBadMultipart(fmt.Sprintf("the form has more than %d parts", maxFormParts)))
			return
		}
		// Raw: a transfer encoding is refused by formPart, never decoded.
		part, err := mr.NextRawPart()
		if err == io.EOF {
			s.writeError(w, r, errorf(http.StatusBadRequest, "no_file", "the form has no field named file"))
			return
		}
		if err != nil {
			s.refuseBody(w, r, formError(err))
			return
		}
		field, filename, err := formPart(part)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		switch field {
		case "upload_id":
			b, err := io.ReadAll(io.LimitReader(part, 65))
			if err != nil {
				s.refuseBody(w, r, formError(err))
				return
			}
			if id == "" {
				id = strings.TrimSpace(string(b))
				if !uploadIDPattern.MatchString(id) {
					s.writeError(w, r, errorf(http.StatusBadRequest, "bad_upload_id", "upload_id must be 1 to 64 letters, digits, '-' or '_'"))
					return
				}
			}
		case "file":
			result = s.ingest(w, r, lib, id, filename, &formBody{r: part, atEOF: guard.stop})
			part.Close()
			return
		default:
			// Unknown fields are skipped, not an error: forms evolve.
		}
		part.Close()
	}
}

// ingest hands one file to the library and answers; it returns the
// result for OnUpload.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request, lib Library, id, name string, body io.Reader) string {
	name = filepath.Base(strings.ReplaceAll(name, `\`, "/"))
	if name == "." || name == "/" || name == "" {
		name = "upload"
	}
	s.uploads.update(id, func(u *uploadState) { u.Name, u.Stage = name, "receiving" })
	t, existed, err := lib.Ingest(r.Context(), name, body, func(p uploads.Progress) {
		s.uploads.update(id, func(u *uploadState) { u.Stage, u.Fraction = p.Stage, p.Fraction })
	})
	if err != nil {
		var be *bodyReadError
		if errors.As(err, &be) {
			err = formError(be.err)
		}
		status, code, msg := statusFor(err)
		s.uploads.update(id, func(u *uploadState) { u.Done, u.Error = true, &errInfo{Code: code, Message: msg} })
		// A read cut short by the rate guard cancels the request's
		// context too, but that client is still there to be told why.
		if r.Context().Err() != nil && status != http.StatusRequestTimeout {
			s.log.Info("upload abandoned by the client", "name", name)
			return "rejected"
		}
		s.log.Info("upload refused", "name", name, "status", status, "code", code, "reason", msg)
		if status < 500 {
			s.opt.Player.Events().Add(player.Event{Kind: "admin", Message: "upload of " + name + " refused: " + msg})
		}
		if status == http.StatusRequestTimeout {
			s.refuseBody(w, r, err)
			return "rejected"
		}
		// Read the rest so the browser gets the answer instead of a reset
		// connection; the body cap bounds this.
		io.Copy(io.Discard, r.Body)
		s.writeError(w, r, err)
		if status >= 500 {
			return "failed"
		}
		return "rejected"
	}
	s.uploads.update(id, func(u *uploadState) { u.Done, u.Stage, u.Fraction, u.TrackID = true, "done", 1, t.ID })

	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	if !existed {
		s.record(r, "track added: "+t.Name, "track", t.ID)
	}
	writeJSON(w, status, t)
	return "ok"
}

func (s *Server) countUpload(result string) {
	if s.opt.OnUpload != nil {
		s.opt.OnUpload(result)
	}
}

// refuseBody answers an upload whose body cannot be read on: the rest
// of it is not waited for, so the connection closes after the answer.
func (s *Server) refuseBody(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Connection", "close")
	s.writeError(w, r, err)
}

// formBody is an upload's file part as the library reads it: a read error
// is tagged as the client's, and its end is the end of the transfer the
// rate guard watches.
type formBody struct {
	r     io.Reader
	atEOF func()
}

func (b *formBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	switch {
	case err == io.EOF:
		if b.atEOF != nil {
			b.atEOF()
			b.atEOF = nil
		}
	case err != nil:
		err = &bodyReadError{err: err}
	}
	return n, err
}
