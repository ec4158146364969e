package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// The service user of these tests: nobody stands in for the appliance's
// moh account, a user that is not root and owns the data dir.
const ddSvcUID, ddSvcGID = 65534, 65534

// ddDaemon is a daemon under test (testkit.Launch: a start that may
// fail by design).
type ddDaemon = testkit.Proc

// ddSetup gives a test a mohd binary and a data dir both usable by the
// user cred (nil: root). t.TempDir's parents are root's and 0700, which the
// service user may not enter.
func ddSetup(t *testing.T, cred *syscall.Credential) (bin, data string) {
	t.Helper()
	base, err := os.MkdirTemp("", "mohd-datadir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(base, "mohd")
	src, err := os.ReadFile(mohdBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	data = filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o750); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	return bin, data
}

func ddCommand(bin string, cred *syscall.Credential, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/"}
	}
	return cmd
}

func ddLaunch(bin string, cred *syscall.Credential, args ...string) (*ddDaemon, error) {
	return testkit.Launch(ddCommand(bin, cred, args...))
}

// noPCMCache turns the direct backend's PCM cache off for daemons whose
// data dir these tests compare file by file: the cache is written once,
// in the first seconds of playback, and would be a legitimate writer
// beside the ones under test.
const noPCMCache = "--pcm-cache-budget=-1"

func ddStart(t *testing.T, bin string, cred *syscall.Credential, args ...string) *ddDaemon {
	t.Helper()
	return testkit.Start(t, ddCommand(bin, cred, args...))
}

var ddCreated = regexp.MustCompile(`created token ([0-9a-f]+) `)

type ddToken struct {
	id, token string
	done      time.Time // when the command that made it returned
}

// ddTokenCreate runs `mohd token create` as cred, as an admin would.
func ddTokenCreate(bin string, cred *syscall.Credential, data, scope, name string) (ddToken, error) {
	cmd := ddCommand(bin, cred, "token", "create", "--scope", scope, "--name", name, "--data", data)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	tok := ddToken{token: strings.TrimSpace(out.String()), done: time.Now()}
	if err != nil {
		return tok, fmt.Errorf("token create as uid %d: %v: %s", ddUID(cred), err, errb.String())
	}
	m := ddCreated.FindStringSubmatch(errb.String())
	if m == nil || !strings.HasPrefix(tok.token, "moh_") {
		return tok, fmt.Errorf("token create: stdout %q stderr %q", out.String(), errb.String())
	}
	tok.id = m[1]
	return tok, nil
}

func ddLater(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func ddUID(cred *syscall.Credential) uint32 {
	if cred == nil {
		return 0
	}
	return cred.Uid
}

// ddStatusCode is what GET /api/v1/status answers to token.
func ddStatusCode(base, token string) int {
	c := &apiClient{base: base, token: token, hc: &http.Client{Timeout: 5 * time.Second}}
	code, err := c.do("GET", "/api/v1/status", nil, nil)
	if err != nil {
		return 0
	}
	return code
}

// ddWorksWithin waits until the API accepts token, and fails if that takes
// more than limit after since.
func ddWorksWithin(base, token string, since time.Time, limit time.Duration) error {
	for {
		code := ddStatusCode(base, token)
		if code == 200 {
			return nil
		}
		if time.Since(since) > limit {
			return fmt.Errorf("token not accepted %v after it was created (last answer %d)", limit, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTokenCreatesBesideDaemon runs 20 `mohd token create` at once while
// the daemon starts (its start-up sweep used to delete their temp files)
// and 20 more while the API creates and revokes tokens, both as root (the
// documented `sudo mohd token create`) and, with the daemon running as an
// unprivileged service user, as that user. No command fails, no token is
// lost or comes back after its revocation, each works on the API within
// 1 s, the daemon never restarts, and every file and lock file in the
// data dir still belongs to the service user.
func TestTokenCreatesBesideDaemon(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as both root and the service user")
	}
	svc := &syscall.Credential{Uid: ddSvcUID, Gid: ddSvcGID}
	for _, tc := range []struct {
		name   string
		daemon *syscall.Credential
		cli    []*syscall.Credential // cycled over the commands
	}{
		{name: "root", daemon: nil, cli: []*syscall.Credential{nil}},
		{name: "service-user", daemon: svc, cli: []*syscall.Credential{nil, svc}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, data := ddSetup(t, tc.daemon)
			// The admin bootstraps with sudo, before the service first starts.
			admin, err := ddTokenCreate(bin, nil, data, "admin", "admin")
			if err != nil {
				t.Fatal(err)
			}
			adminTok := admin.token
			list := func() []string {
				var ids []string
				out, err := ddCommand(bin, nil, "token", "list", "--data", data).Output()
				if err != nil {
					t.Fatalf("token list: %v", err)
				}
				for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
					ids = append(ids, strings.Fields(l)[0])
				}
				return ids
			}
			want := map[string]string{admin.id: admin.token} // id → token expected to work at the end

			addr := testkit.FreeAddr(t)
			base := "http://" + addr
			burst := func(phase string) []ddToken {
				toks := make([]ddToken, 20)
				errs := make([]error, 20)
				var wg sync.WaitGroup
				for i := range 20 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						time.Sleep(time.Duration(i) * time.Millisecond)
						toks[i], errs[i] = ddTokenCreate(bin, tc.cli[i%len(tc.cli)], data, "read", fmt.Sprintf("%s-%d", phase, i))
					}()
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Errorf("%s command %d: %v", phase, i, err)
					}
				}
				return toks
			}

			// Phase 1: the daemon starts while the commands run. It starts
			// a little after the first of them, so that its start-up sweep
			// falls among their writes rather than before them.
			var d *ddDaemon
			var startErr error
			started := make(chan struct{})
			go func() {
				defer close(started)
				time.Sleep(10 * time.Millisecond)
				d, startErr = ddLaunch(bin, tc.daemon, "run", "--data", data, "--listen", addr, "--output", "null", noPCMCache)
			}()
			atStart := burst("start")
			<-started
			if startErr != nil {
				t.Fatal(startErr)
			}
			t.Cleanup(d.Kill)
			var up time.Time
			for deadline := time.Now().Add(20 * time.Second); ; {
				if ddStatusCode(base, adminTok) == 200 {
					up = time.Now()
					break
				}
				if d.Exited() || time.Now().After(deadline) {
					t.Fatalf("daemon not answering:\n%s", d.Log)
				}
				time.Sleep(20 * time.Millisecond)
			}
			for _, tok := range atStart {
				if tok.id == "" {
					continue
				}
				want[tok.id] = tok.token
				if err := ddWorksWithin(base, tok.token, ddLater(up, tok.done), time.Second); err != nil {
					t.Errorf("start token %s: %v", tok.id, err)
				}
			}

			// Phase 2: the API creates and revokes tokens meanwhile.
			api := &apiClient{base: base, token: adminTok, hc: &http.Client{Timeout: 5 * time.Second}}
			var mu sync.Mutex
			var apiErrs []string
			revoked := map[string]string{}
			stop := make(chan struct{})
			churned := make(chan int)
			var writes atomic.Int64 // API token creates and revokes answered
			go func() {
				n := 0
				defer func() { churned <- n }()
				for ; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					var ct struct {
						ID    string `json:"id"`
						Token string `json:"token"`
					}
					code, err := api.do("POST", "/api/v1/tokens", map[string]string{"scope": "read", "name": fmt.Sprintf("api-%d", n)}, &ct)
					writes.Add(1)
					if err != nil || code != 201 {
						mu.Lock()
						apiErrs = append(apiErrs, fmt.Sprintf("create via API: %d %v", code, err))
						mu.Unlock()
						time.Sleep(50 * time.Millisecond)
						continue
					}
					if code := ddStatusCode(base, ct.Token); code != 200 {
						mu.Lock()
						apiErrs = append(apiErrs, fmt.Sprintf("API token %s answered %d", ct.ID, code))
						mu.Unlock()
					}
					if n%2 == 1 {
						mu.Lock()
						want[ct.ID] = ct.Token
						mu.Unlock()
						continue
					}
					code, err = api.do("DELETE", "/api/v1/tokens/"+ct.ID, nil, nil)
					writes.Add(1)
					mu.Lock()
					if err != nil || code != 204 {
						apiErrs = append(apiErrs, fmt.Sprintf("revoke via API: %d %v", code, err))
						want[ct.ID] = ct.Token
					} else {
						revoked[ct.ID] = ct.Token
					}
					mu.Unlock()
				}
			}()
			for deadline := time.Now().Add(10 * time.Second); writes.Load() < 2 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond) // until the churn is under way
			}
			before := writes.Load()
			beside := burst("api")
			during := writes.Load() - before
			for _, tok := range beside {
				if tok.id == "" {
					continue
				}
				mu.Lock()
				want[tok.id] = tok.token
				mu.Unlock()
				if err := ddWorksWithin(base, tok.token, tok.done, time.Second); err != nil {
					t.Errorf("token %s made beside the API: %v", tok.id, err)
				}
			}
			close(stop)
			total := <-churned
			for _, e := range apiErrs {
				t.Error(e)
			}
			if before < 2 || during < 1 {
				t.Errorf("API churn did not overlap the commands: %d token writes before them, %d during", before, during)
			}

			// Nothing lost, nothing resurrected: the daemon's list, the
			// file and the API's answers agree.
			var doc struct {
				Tokens []struct {
					ID string `json:"id"`
				} `json:"tokens"`
			}
			if code, err := api.do("GET", "/api/v1/tokens", nil, &doc); err != nil || code != 200 {
				t.Fatalf("list via API: %d %v", code, err)
			}
			var got []string
			for _, tk := range doc.Tokens {
				got = append(got, tk.ID)
			}
			var wantIDs []string
			for id := range want {
				wantIDs = append(wantIDs, id)
			}
			slices.Sort(got)
			slices.Sort(wantIDs)
			if !slices.Equal(got, wantIDs) {
				t.Errorf("API lists %d tokens %v,\nwant %d %v", len(got), got, len(wantIDs), wantIDs)
			}
			if cli := list(); !slices.Equal(slices.Sorted(slices.Values(cli)), wantIDs) {
				t.Errorf("`mohd token list` shows %v, want %v", cli, wantIDs)
			}
			for id, tok := range want {
				if code := ddStatusCode(base, tok); code != 200 {
					t.Errorf("token %s answered %d at the end, want 200", id, code)
				}
			}
			for id, tok := range revoked {
				if code := ddStatusCode(base, tok); code != 401 {
					t.Errorf("revoked token %s answered %d, want 401", id, code)
				}
			}

			if d.Exited() {
				t.Fatalf("daemon exited:\n%s", d.Log)
			}
			if n := strings.Count(d.Log.String(), "mohd starting"); n != 1 {
				t.Errorf("daemon started %d times", n)
			}
			ddCheckOwnership(t, data)
			var uids []uint32
			for _, c := range tc.cli {
				uids = append(uids, ddUID(c))
			}
			t.Logf("%d commands as uids %v; %d API create/revoke cycles, %d API token writes during the second 20 commands; %d tokens kept, %d revoked",
				len(atStart)+len(beside), uids, total, during, len(wantIDs), len(revoked))
		})
	}
}

// ddCheckOwnership: every file under data, lock files included, belongs
// to the data dir's owner and group; the secrets are 0600; no temp file is
// left.
func ddCheckOwnership(t *testing.T, data string) {
	t.Helper()
	di, err := os.Stat(data)
	if err != nil {
		t.Fatal(err)
	}
	ds := di.Sys().(*syscall.Stat_t)
	filepath.WalkDir(data, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Error(err)
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(data, p)
		if st.Uid != ds.Uid || st.Gid != ds.Gid {
			t.Errorf("%s is owned by %d:%d, the data dir by %d:%d", rel, st.Uid, st.Gid, ds.Uid, ds.Gid)
		}
		if strings.HasPrefix(e.Name(), ".moh-tmp-") {
			t.Errorf("temp file left: %s", rel)
		}
		switch e.Name() {
		case "tokens.json", ".tokens.lock", "admin-password", ".password.lock", ".mohd.lock":
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", rel, fi.Mode().Perm())
			}
		}
		return nil
	})
}

// TestRootPasswdAndRevoke: `sudo mohd passwd` and `sudo mohd token revoke`
// in the service user's data dir, while the service runs, leave it able to
// authenticate: the bearer tokens still work and the API can still create
// and revoke tokens (the revoke once left tokens.json and the lock file
// root's, and every bearer request then answered 500).
func TestRootPasswdAndRevoke(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	svc := &syscall.Credential{Uid: ddSvcUID, Gid: ddSvcGID}
	bin, data := ddSetup(t, svc)
	adminOut, err := ddCommand(bin, svc, "token", "create", "--scope", "admin", "--data", data).Output()
	if err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreeAddr(t)
	base := "http://" + addr
	d := ddStart(t, bin, svc, "run", "--data", data, "--listen", addr, "--output", "null", noPCMCache)
	api := &apiClient{base: base, token: strings.TrimSpace(string(adminOut)), hc: &http.Client{Timeout: 5 * time.Second}}
	if err := ddWorksWithin(base, api.token, time.Now(), 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, d.Log)
	}
	victim, err := ddTokenCreate(bin, nil, data, "read", "victim")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"token", "revoke", victim.id, "--data", data},
		{"passwd", "--data", data},
	} {
		cmd := ddCommand(bin, nil, args...)
		cmd.Stdin = strings.NewReader("a long admin password\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sudo mohd %s: %v: %s", args[0], err, out)
		}
	}
	if code := ddStatusCode(base, api.token); code != 200 {
		t.Errorf("admin token after a root revoke: %d, want 200", code)
	}
	if code := ddStatusCode(base, victim.token); code != 401 {
		t.Errorf("revoked token: %d, want 401", code)
	}
	var ct struct {
		ID string `json:"id"`
	}
	if code, err := api.do("POST", "/api/v1/tokens", map[string]string{"scope": "read"}, &ct); err != nil || code != 201 {
		t.Errorf("create via API after root commands: %d %v", code, err)
	} else if code, err := api.do("DELETE", "/api/v1/tokens/"+ct.ID, nil, nil); err != nil || code != 204 {
		t.Errorf("revoke via API after root commands: %d %v", code, err)
	}
	ddCheckOwnership(t, data)
}

// ddMP3 encodes a short real MP3 (sox sine, lame) to upload.
func ddMP3(t *testing.T, secs float64, freq int) []byte {
	t.Helper()
	mp3 := filepath.Join(t.TempDir(), "a.mp3")
	testkit.SineMP3(t, mp3, secs, freq, 0.3, 128)
	b, err := os.ReadFile(mp3)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type ddUpload struct {
	code int
	body string
	err  error
}

// ddUploadPaused posts mp3 as a track, sending the first half at once and
// the rest when resume is closed.
func ddUploadPaused(base, token, name string, mp3 []byte, resume <-chan struct{}) <-chan ddUpload {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	res := make(chan ddUpload, 1)
	go func() {
		fw, err := mw.CreateFormFile("file", name)
		if err == nil {
			_, err = fw.Write(mp3[:len(mp3)/2])
		}
		if err == nil {
			<-resume
			_, err = fw.Write(mp3[len(mp3)/2:])
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	go func() {
		req, _ := http.NewRequest("POST", base+"/api/v1/tracks", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			res <- ddUpload{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- ddUpload{code: resp.StatusCode, body: string(b)}
	}()
	return res
}

// ddSnapshot describes every entry under dir: type, owner, mode, size,
// inode, mtime and a content hash.
func ddSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d ino %d size %d mtime %d", fi.Mode(), st.Uid, st.Gid, st.Ino, fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			desc += " sha256 " + hex.EncodeToString(sum[:8])
		}
		rel, _ := filepath.Rel(dir, p)
		snap[rel] = desc
		return nil
	})
	return snap
}

func ddTrackIDs(t *testing.T, api *apiClient) []string {
	t.Helper()
	var doc struct {
		Tracks []struct {
			ID string `json:"id"`
		} `json:"tracks"`
	}
	if code, err := api.do("GET", "/api/v1/tracks", nil, &doc); err != nil || code != 200 {
		t.Fatalf("list tracks: %d %v", code, err)
	}
	var ids []string
	for _, tr := range doc.Tracks {
		ids = append(ids, tr.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestSecondDaemonChangesNothing: a second `mohd run` on a data dir a
// daemon holds, on another port, exits non-zero at once with a message
// naming the dir and the holder's pid, and changes nothing in the data
// dir: the first daemon's upload in flight (its temp file once swept by
// the second) completes with 201, and that acknowledged track is still
// there after the first daemon restarts.
func TestSecondDaemonChangesNothing(t *testing.T) {
	data := t.TempDir()
	out := createToken(t, data, "admin")
	addr := testkit.FreeAddr(t)
	first := ddStart(t, mohdBin, nil, "run", "--data", data, "--listen", addr, "--output", "null", noPCMCache)
	api := &apiClient{base: "http://" + addr, token: out, hc: &http.Client{Timeout: 60 * time.Second}}
	if err := ddWorksWithin(api.base, api.token, time.Now(), 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, first.Log)
	}
	done := make(chan struct{})
	close(done)
	if r := <-ddUploadPaused(api.base, api.token, "one.mp3", ddMP3(t, 1.5, 440), done); r.err != nil || r.code != 201 {
		t.Fatalf("first upload: %d %v %s", r.code, r.err, r.body)
	}
	before := ddTrackIDs(t, api)

	// An upload in flight: its temp file is in the store.
	resume := make(chan struct{})
	inflight := ddUploadPaused(api.base, api.token, "two.mp3", ddMP3(t, 1.5, 660), resume)
	origs := filepath.Join(data, "tracks", "originals")
	for deadline := time.Now().Add(10 * time.Second); ; {
		m, _ := filepath.Glob(filepath.Join(origs, ".moh-tmp-upload-*"))
		if len(m) == 1 {
			if fi, err := os.Stat(m[0]); err == nil && fi.Size() > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the paused upload never reached the store")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the first half is all written
	snap := ddSnapshot(t, data)

	second := ddStart(t, mohdBin, nil, "run", "--data", data, "--listen", testkit.FreeAddr(t), "--output", "null", noPCMCache)
	select {
	case <-second.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("a second daemon on the same data dir is still running after 10 s:\n%s", second.Log)
	}
	if code := second.Cmd.ProcessState.ExitCode(); code == 0 {
		t.Errorf("second daemon exited 0")
	}
	msg := fmt.Sprintf("data dir %s is in use by another mohd (pid %d)", data, first.Cmd.Process.Pid)
	if !strings.Contains(second.Log.String(), msg) {
		t.Errorf("second daemon's message lacks %q:\n%s", msg, second.Log)
	}
	after := ddSnapshot(t, data)
	for p, d := range snap {
		if after[p] != d {
			t.Errorf("the second daemon changed %s:\n  before %s\n  after  %s", p, d, after[p])
		}
	}
	for p, d := range after {
		if _, ok := snap[p]; !ok {
			t.Errorf("the second daemon created %s (%s)", p, d)
		}
	}

	close(resume)
	r := <-inflight
	if r.err != nil || r.code != 201 {
		t.Fatalf("upload in flight beside the second daemon: %d %v %s", r.code, r.err, r.body)
	}
	var tr struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(r.body), &tr)
	want := slices.Sorted(slices.Values(append(slices.Clone(before), tr.ID)))
	if got := ddTrackIDs(t, api); !slices.Equal(got, want) {
		t.Fatalf("tracks after the upload: %v, want %v", got, want)
	}
	if first.Exited() {
		t.Fatalf("first daemon exited:\n%s", first.Log)
	}

	// What was acknowledged survives the next start.
	first.Cmd.Process.Signal(syscall.SIGTERM)
	<-first.Done()
	addr = testkit.FreeAddr(t)
	ddStart(t, mohdBin, nil, "run", "--data", data, "--listen", addr, "--output", "null", noPCMCache)
	api.base = "http://" + addr
	if err := ddWorksWithin(api.base, api.token, time.Now(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := ddTrackIDs(t, api); !slices.Equal(got, want) {
		t.Fatalf("tracks after a restart: %v, want %v", got, want)
	}
}
