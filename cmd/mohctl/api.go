package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// apiError is a box's answer in the API's error shape, or a transport
// failure described the same way.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// api talks to one box's /api/v1.
type api struct {
	hc    *http.Client
	base  string
	token string
}

func newAPI(hc *http.Client, b Box) *api {
	return &api{hc: hc, base: strings.TrimRight(b.URL, "/"), token: b.Token}
}

func (a *api) do(ctx context.Context, method, path string, body io.Reader, ctype string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return describeNetErr(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		json.Unmarshal(raw, &eb)
		return &apiError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("parse answer of %s %s: %w", method, path, err)
		}
	}
	return nil
}

// describeNetErr shortens Go's long URL errors to what an operator needs.
func describeNetErr(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return errors.New("timed out")
	case errors.Is(err, context.Canceled):
		return errors.New("cancelled")
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		msg := ue.Unwrap().Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg, "dial tcp") {
			msg = "unreachable: " + msg[i+2:]
		}
		return errors.New(msg)
	}
	return err
}

func (a *api) jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// status reads GET /api/v1/status; statusRow decodes it.
func (a *api) status(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := a.do(ctx, http.MethodGet, "/api/v1/status", nil, "", &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

type event struct {
	Time    jsonTime `json:"time"`
	Kind    string   `json:"kind"`
	Fault   string   `json:"fault"`
	Message string   `json:"message"`
}

func (a *api) events(ctx context.Context) ([]event, error) {
	return getList[event](ctx, a, "/api/v1/events?n=1000", "events")
}

// getList reads a list the API serves at path, under key (decodeList).
func getList[T any](ctx context.Context, a *api, path, key string) ([]T, error) {
	var raw json.RawMessage
	if err := a.do(ctx, http.MethodGet, path, nil, "", &raw); err != nil {
		return nil, err
	}
	return decodeList[T](raw, key)
}

// decodeList accepts a bare array or an object holding it under key.
func decodeList[T any](raw json.RawMessage, key string) ([]T, error) {
	var list []T
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("parse %s: %w", key, err)
	}
	if err := json.Unmarshal(obj[key], &list); err != nil {
		return nil, fmt.Errorf("parse %s: %w", key, err)
	}
	return list, nil
}

type track struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (a *api) tracks(ctx context.Context) ([]track, error) {
	return getList[track](ctx, a, "/api/v1/tracks", "tracks")
}

// upload streams file as multipart field "file" without holding it in
// memory (the request body is a pipe).
func (a *api) upload(ctx context.Context, file string) (track, error) {
	f, err := os.Open(file)
	if err != nil {
		return track{}, err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("file", filepath.Base(file))
		if err == nil {
			_, err = io.Copy(part, f)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	var raw json.RawMessage
	if err := a.do(ctx, http.MethodPost, "/api/v1/tracks", pr, mw.FormDataContentType(), &raw); err != nil {
		pr.CloseWithError(err)
		return track{}, err
	}
	var t track
	if err := json.Unmarshal(raw, &t); err != nil || t.ID == "" {
		var wrapped struct {
			Track track `json:"track"`
		}
		if json.Unmarshal(raw, &wrapped) == nil && wrapped.Track.ID != "" {
			return wrapped.Track, nil
		}
		return track{}, fmt.Errorf("upload answer has no track id: %.200s", raw)
	}
	return t, nil
}

func (a *api) remove(ctx context.Context, id string) error {
	return a.do(ctx, http.MethodDelete, "/api/v1/tracks/"+pathEscape(id), nil, "", nil)
}

func (a *api) reorder(ctx context.Context, ids []string) error {
	return a.do(ctx, http.MethodPut, "/api/v1/playlist", a.jsonBody(map[string][]string{"order": ids}), "application/json", nil)
}

func (a *api) player(ctx context.Context, verb string) error {
	return a.do(ctx, http.MethodPost, "/api/v1/player/"+verb, nil, "", nil)
}

func (a *api) volume(ctx context.Context, v int) error {
	return a.do(ctx, http.MethodPut, "/api/v1/volume", a.jsonBody(map[string]int{"volume": v}), "application/json", nil)
}

type tokenInfo struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Scope   string `json:"scope"`
	Token   string `json:"token"`
	Current bool   `json:"current"`
}

func (a *api) createToken(ctx context.Context, scope, name string) (tokenInfo, error) {
	var t tokenInfo
	err := a.do(ctx, http.MethodPost, "/api/v1/tokens", a.jsonBody(map[string]string{"scope": scope, "name": name}), "application/json", &t)
	if err == nil && (t.Token == "" || t.ID == "") {
		err = errors.New("token answer lacks id or token")
	}
	return t, err
}

func (a *api) listTokens(ctx context.Context) ([]tokenInfo, error) {
	return getList[tokenInfo](ctx, a, "/api/v1/tokens", "tokens")
}

func (a *api) revokeToken(ctx context.Context, id string) error {
	return a.do(ctx, http.MethodDelete, "/api/v1/tokens/"+pathEscape(id), nil, "", nil)
}
