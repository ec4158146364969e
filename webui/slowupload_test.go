package webui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"testing"
	"time"
)

// uploadTo posts content as the form's file, writing it in chunks of
// chunk bytes with pause between them (0: all at once).
func uploadTo(addr, token string, content []byte, chunk int, pause time.Duration) (int, []byte, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "t.mp3")
	fw.Write(content)
	mw.Close()
	body := buf.Bytes()
	var rd io.Reader = bytes.NewReader(body)
	if chunk > 0 {
		pr, pw := io.Pipe()
		go func() {
			for len(body) > 0 {
				n := min(chunk, len(body))
				if _, err := pw.Write(body[:n]); err != nil {
					return
				}
				body = body[n:]
				time.Sleep(pause)
			}
			pw.Close()
		}()
		rd = pr
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/tracks", rd)
	req.ContentLength = int64(buf.Len())
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}

type trickleResult struct {
	status int
	code   string
	err    error
	took   time.Duration
}

// trickle starts an upload that sends its form a few bytes at a time,
// far below the minimum rate, and reports its answer.
func trickle(t *testing.T, addr, token string) <-chan trickleResult {
	c := dialFrom(t, addr, "127.0.0.1")
	const boundary = "trickle"
	start := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.mp3\"\r\n\r\n"
	fmt.Fprintf(c, "POST /api/v1/tracks HTTP/1.1\r\nHost: moh\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n%s", token, boundary, 1<<20, start)
	began := time.Now()
	stop := make(chan struct{})
	go func() {
		chunk := bytes.Repeat([]byte{0xff}, 64)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond): // 640 B/s
			}
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	out := make(chan trickleResult, 1)
	go func() {
		defer close(stop)
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			out <- trickleResult{err: err, took: time.Since(began)}
			return
		}
		var eb errorBody
		b, _ := io.ReadAll(resp.Body)
		json.Unmarshal(b, &eb)
		out <- trickleResult{status: resp.StatusCode, code: eb.Error.Code, took: time.Since(began)}
	}()
	return out
}

// TestTricklingUploadRefused: two uploads trickling in hold both upload
// slots only until the minimum-rate check refuses them with 408; then an
// upload at a normal pace goes through.
func TestTricklingUploadRefused(t *testing.T) {
	lib := openLibrary(t, nil)
	s := serve(t, func(o *Options) { o.Library = lib; o.MaxConcurrentUploads = 2 },
		func(s *Server) { s.upRate = rateLimit{min: 16 << 10, grace: time.Second, window: time.Second} })
	mp3, _ := os.ReadFile(makeMP3(t, t.TempDir(), "ok.mp3", 10, 440))

	slow := []<-chan trickleResult{trickle(t, s.addr, s.admin), trickle(t, s.addr, s.admin)}
	deadline := time.Now().Add(3 * time.Second)
	for len(s.srv.upSlots) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the trickling uploads hold %d slots, want 2", len(s.srv.upSlots))
		}
		time.Sleep(10 * time.Millisecond)
	}
	status, body, err := uploadTo(s.addr, s.admin, mp3, 0, 0)
	if err != nil || status != 429 {
		t.Fatalf("upload while both slots are held: %d %s %v, want 429", status, body, err)
	}
	for i, ch := range slow {
		r := <-ch
		if r.err != nil || r.status != http.StatusRequestTimeout || r.code != "too_slow" {
			t.Fatalf("trickling upload %d: %+v, want 408 too_slow", i, r)
		}
		t.Logf("trickling upload %d refused %d %s after %v", i, r.status, r.code, r.took.Round(10*time.Millisecond))
		if r.took > 5*time.Second {
			t.Errorf("refused only after %v (grace 1 s + window 1 s)", r.took)
		}
	}
	deadline = time.Now().Add(2 * time.Second)
	for len(s.srv.upSlots) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d upload slots still held after the refusals", len(s.srv.upSlots))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// An upload at a modest but steady pace (~80 KiB/s, for longer than
	// grace and window together) is not mistaken for a trickle.
	start := time.Now()
	status, body, err = uploadTo(s.addr, s.admin, mp3, 8<<10, 100*time.Millisecond)
	if err != nil || status != 201 {
		t.Fatalf("steady upload: %d %s %v", status, body, err)
	}
	t.Logf("steady upload of %d KiB took %v: 201", len(mp3)>>10, time.Since(start).Round(10*time.Millisecond))
	if len(lib.Tracks()) != 1 {
		t.Fatalf("%d tracks, want the one steady upload", len(lib.Tracks()))
	}
}
