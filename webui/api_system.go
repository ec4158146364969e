package webui

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/mohproject/moh/internal/sysupdate"
)

// Updater is the box's system updater (internal/sysupdate.Manager); nil
// answers GET /api/v1/system with "update":"off".
type Updater interface {
	On() bool
	Status() sysupdate.Status
	Slots(ctx context.Context) (sysupdate.RaucStatus, error)
	Upload(ctx context.Context, r io.Reader, size int64, req sysupdate.Request) (sysupdate.Status, error)
	Fetch(ctx context.Context, url string, req sysupdate.Request) (sysupdate.Status, error)
}

// systemDoc is GET /api/v1/system (schema System in openapi.json).
type systemDoc struct {
	// Update is "rauc" or "off".
	Update string `json:"update"`
	// RaucAvailable is whether `rauc status` answered; RaucError says
	// why not.
	RaucAvailable bool             `json:"rauc_available"`
	RaucError     string           `json:"rauc_error,omitempty"`
	Compatible    string           `json:"compatible,omitempty"`
	Booted        string           `json:"booted,omitempty"`
	Slots         []sysupdate.Slot `json:"slots"`
	// SlotsStale: Slots (and Booted, Compatible) are RAUC's previous
	// answer, or absent, because the fresh one took longer than
	// systemSlotsWait; asking again soon gets it.
	SlotsStale bool `json:"slots_stale,omitempty"`
	// State is the update's phase, progress and reason.
	State sysupdate.Status `json:"state"`
}

// systemSlotsWait bounds how long GET /api/v1/system waits for `rauc
// status` (about 10 s on the slowest box, more right after an install or
// a mark while RAUC is busy) before it answers with the previous slots:
// inside the server's write timeout and a client's usual 10 s.
const systemSlotsWait = 8 * time.Second

func (s *Server) system(w http.ResponseWriter, r *http.Request) {
	doc := systemDoc{Update: "off", Slots: []sysupdate.Slot{}, State: sysupdate.Status{Update: "off", Phase: sysupdate.PhaseIdle}}
	if u := s.opt.Update; u != nil && u.On() {
		doc.Update = "rauc"
		doc.State = u.Status()
		ctx, cancel := context.WithTimeout(r.Context(), systemSlotsWait)
		rs, err := u.Slots(ctx)
		cancel()
		if err != nil {
			doc.RaucError = err.Error()
			doc.SlotsStale = errors.Is(err, sysupdate.ErrSlotsPending)
		} else {
			doc.RaucAvailable = true
			doc.Compatible, doc.Booted, doc.SlotsStale = rs.Compatible, rs.Booted, rs.Stale
			if rs.Slots != nil {
				doc.Slots = rs.Slots
			}
		}
	}
	writeJSON(w, http.StatusOK, doc)
}

// updateRequest is the JSON form of POST /api/v1/system/update.
type updateRequest struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
	Reboot string `json:"reboot"`
}

// maxBundleUpload caps an uploaded bundle's request body: a root
// filesystem image, well above any track.
const maxBundleUpload = sysupdate.DefaultMaxBundle + 1<<20

// systemUpdate takes a bundle (multipart field "bundle", with optional
// fields "sha256" and "reboot" before it or in the query) or a URL to
// fetch, and answers 202 once it is verified and the install has begun.
// Nothing is installed from a bundle it refuses.
func (s *Server) systemUpdate(w http.ResponseWriter, r *http.Request) {
	u := s.opt.Update
	if u == nil || !u.On() {
		s.writeError(w, r, errorf(http.StatusConflict, "update_off", "system updates are off on this box (update = off)"))
		return
	}
	extendDeadlines(w, uploadDeadline)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var (
		st  sysupdate.Status
		err error
	)
	if mt == "application/json" {
		var req updateRequest
		if err := decodeJSON(w, r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		if req.URL == "" {
			s.writeError(w, r, errorf(http.StatusBadRequest, "bad_request", "give url and sha256, or upload the bundle as multipart field bundle"))
			return
		}
		// The download outlives a client that hangs up: the box would
		// otherwise leave a half-fetched bundle for nothing.
		st, err = u.Fetch(context.WithoutCancel(r.Context()), req.URL, sysupdate.Request{SHA256: req.SHA256, Reboot: req.Reboot})
	} else {
		st, err = s.uploadBundle(w, r, u)
	}
	if err != nil {
		s.writeError(w, r, updateError(err))
		return
	}
	writeJSON(w, http.StatusAccepted, st)
}

func (s *Server) uploadBundle(w http.ResponseWriter, r *http.Request, u Updater) (sysupdate.Status, error) {
	size := r.ContentLength
	r.Body = http.MaxBytesReader(w, r.Body, maxBundleUpload)
	mr, err := multipartForm(r)
	if err != nil {
		return sysupdate.Status{}, err
	}
	req := sysupdate.Request{SHA256: r.URL.Query().Get("sha256"), Reboot: r.URL.Query().Get("reboot")}
	for parts := 0; parts < maxFormParts; parts++ {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			return sysupdate.Status{}, errorf(http.StatusBadRequest, "no_file", "the form has no field named bundle")
		}
		if err != nil {
			return sysupdate.Status{}, formError(err)
		}
		field, _, err := formPart(part)
		if err != nil {
			return sysupdate.Status{}, err
		}
		switch field {
		case "sha256", "reboot":
			b, err := io.ReadAll(io.LimitReader(part, 128))
			if err != nil {
				return sysupdate.Status{}, formError(err)
			}
			if field == "sha256" {
				req.SHA256 = strings.TrimSpace(string(b))
			} else {
				req.Reboot = strings.TrimSpace(string(b))
			}
		case "bundle":
			defer part.Close()
			return u.Upload(r.Context(), &formBody{r: part}, size, req)
		}
		part.Close()
	}
	return sysupdate.Status{}, errBadMultipart("the form has too many parts")
}

// updateError maps the updater's refusals to the API's statuses; what
// is left is the box's own failure.
func updateError(err error) error {
	if code, msg, ok := sysupdate.Explain(err); ok {
		return errorf(updateStatus(code), code, msg)
	}
	var br *bodyReadError
	if errors.As(err, &br) {
		return formError(br.err)
	}
	return err
}

// updateStatus is the HTTP status of an update error code.
func updateStatus(code string) int {
	switch code {
	case sysupdate.CodeBadRequest:
		return http.StatusBadRequest
	case sysupdate.CodeRunning, sysupdate.CodeOff:
		return http.StatusConflict
	case sysupdate.CodeDiskFull:
		return http.StatusInsufficientStorage
	case sysupdate.CodeDownload:
		return http.StatusBadGateway
	}
	return http.StatusUnprocessableEntity // a bundle refused (Refused.Code)
}
