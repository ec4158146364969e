package webui

import (
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// slowReader delivers its data in two halves with a pause between them,
// like a big upload over a slow site link.
type slowReader struct {
	first, second []byte
	pause         time.Duration
	step          int
}

func (r *slowReader) Read(p []byte) (int, error) {
	switch r.step {
	case 0:
		r.step++
		return copy(p, r.first), nil
	case 1:
		r.step++
		time.Sleep(r.pause)
		fallthrough
	case 2:
		if len(r.second) == 0 {
			return 0, io.EOF
		}
		n := copy(p, r.second)
		r.second = r.second[n:]
		return n, nil
	}
	return 0, io.EOF
}

// TestSlowUploadOutlivesServerTimeouts: the server's read and write
// timeouts are short to shed slow clients, but an upload extends its own
// deadlines, while any other slow request is still cut off.
func TestSlowUploadOutlivesServerTimeouts(t *testing.T) {
	lib := openLibrary(t, nil)
	e := newEnv(t, envOpts{password: testPW, library: lib})
	admin, _, _ := CreateToken(e.dir, "admin", "")
	hs := e.srv.httpServer()
	hs.ReadTimeout = 300 * time.Millisecond
	hs.WriteTimeout = 300 * time.Millisecond
	ln := listenLoopback(t)
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Shutdown(context.Background()) })
	base := "http://" + ln.Addr().String()

	mp3, _ := os.ReadFile(makeMP3(t, t.TempDir(), "slow.mp3", 2, 440))
	var sb strings.Builder
	mw := multipart.NewWriter(&sb)
	fw, _ := mw.CreateFormFile("file", "slow.mp3")
	fw.Write(mp3)
	mw.Close()
	body := []byte(sb.String())
	half := len(body) / 2
	req, _ := http.NewRequest("POST", base+"/api/v1/tracks", &slowReader{first: body[:half], second: body[half:], pause: time.Second})
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("slow upload cut off: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("slow upload: %d %s", resp.StatusCode, b)
	}

	// A slow JSON body is not given the same grace.
	vol := []byte(`{"volume":12}`)
	req, _ = http.NewRequest("PUT", base+"/api/v1/volume", &slowReader{first: vol[:5], second: vol[5:], pause: time.Second})
	req.ContentLength = int64(len(vol))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err = http.DefaultClient.Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("slow small request was not cut off: %s", b)
		}
	}
	if e.player.Settings().Volume == 12 {
		t.Fatal("volume changed by a request that should have timed out")
	}
}

// The connection caps are tested in conns_test.go.
