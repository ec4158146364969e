package imagetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestImage is the acceptance test of the appliance image (make
// image-test): first boot into the fallback loop, seamless; provisioning of
// an admin token; an upload and a setting; then power cuts at random
// moments, after each of which the box must play again by itself with its
// library and settings intact; the flash budget over steady playback;
// finally system updates through RAUC's A/B slots (update_test.go).
func TestImage(t *testing.T) {
	img := os.Getenv("MOH_IMAGE")
	if img == "" {
		t.Skip("MOH_IMAGE is not set: the boot test runs with make image-test")
	}
	for _, tool := range []string{"qemu-system-x86_64", "mpg123", "sfdisk", "debugfs", "mkfs.ext4", "sox", "lame"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for the boot test: %v", tool, err)
		}
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	env := readEnvFile(t, filepath.Join(filepath.Dir(img), "image.env"))
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MOH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	cuts := envInt("MOH_POWER_CUTS", 3)
	flashMinutes := envInt("MOH_FLASH_MINUTES", 4)
	installCuts := envInt("MOH_INSTALL_CUTS", 2)
	bootTimeout := time.Duration(envInt("MOH_BOOT_TIMEOUT_S", 600)) * time.Second
	t.Logf("seed %d (MOH_SEED=%d reproduces the cut moments)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x6d6f68))

	dir := t.TempDir()
	t.Cleanup(func() { keepArtifacts(t, dir, filepath.Join(filepath.Dir(img), "imagetest-failed")) })
	b := &box{t: t, dir: dir, disk: filepath.Join(dir, "disk.raw"), bootTimeout: bootTimeout}
	// A copy of the image, 1 GiB larger than built, like a card larger than
	// the image: the first boot must grow the data partition.
	run(t, "cp", "--sparse=always", img, b.disk)
	st, err := os.Stat(b.disk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(b.disk, st.Size()+1<<30); err != nil {
		t.Fatal(err)
	}
	ref := decodeMP3(t, filepath.Join(repo, "player", "fallback.mp3"))
	loopS := float64(len(ref)) / 44100
	t.Logf("fallback track: %.2f s", loopS)

	// 1. First boot: no manual step, the fallback loop plays, seamlessly.
	v := b.boot("first")
	healthy := b.waitHealthy(v)
	w := b.waitAudio(v)
	t.Logf("RESULT first boot: /healthz 200 after %.1f s, first audio after %.1f s",
		healthy.Seconds(), w.FirstAudio.Sub(v.Start).Seconds())
	// Record until two loop points were crossed cleanly and most were (or
	// 20 loops): a TCG guest starved by a busy host underruns now and then,
	// at random moments; a gap made by the player would break every loop
	// point. Underruns are reported.
	loopFrames := len(ref)
	target := w.FirstAudioFrame + 2*loopFrames + loopFrames/4 + 44100
	var res loopResult
	for {
		b.waitFrames(v, w, target)
		_, pcm, err := readWAV(v.WAV)
		if err != nil {
			t.Fatal(err)
		}
		if res, err = checkLoop(mono(pcm, 2), ref, 44100); err != nil {
			t.Fatalf("fallback loop: %v", err)
		}
		if (res.CleanSeams >= 2 && res.SeamBreaks <= res.CleanSeams) || target > w.FirstAudioFrame+20*loopFrames {
			break
		}
		target += loopFrames
	}
	v.PowerCut()
	w.Close()
	t.Logf("RESULT seam check: %.1f s of audio matched the fallback loop; %d loop points crossed cleanly, %d broken at the loop point; %d breaks elsewhere (guest underruns); longest silence inside matching audio %.2f ms",
		float64(res.Frames)/44100, res.CleanSeams, res.SeamBreaks, len(res.Breaks)-res.SeamBreaks, res.MaxSilenceMs)
	if len(res.BreaksAt) > 0 {
		var rel []string
		for _, at := range res.BreaksAt {
			d := at
			if d > loopFrames/2 {
				d -= loopFrames
			}
			rel = append(rel, fmt.Sprintf("%+.0f", float64(d)*1000/44100))
		}
		t.Logf("breaks, in ms from the nearest loop point: %s", strings.Join(rel, " "))
	}
	if res.CleanSeams < 2 || res.SeamBreaks > res.CleanSeams {
		t.Fatalf("the fallback loop is not seamless at its loop point: breaks at reference frames %v (loop %d frames)", res.BreaksAt, loopFrames)
	}
	serial, _ := os.ReadFile(v.Serial)
	for _, want := range []string{"moh-data: growing", "moh-data: device id moh-", "setup_code="} {
		if !bytes.Contains(serial, []byte(want)) {
			t.Errorf("first boot: %q is not on the console", want)
		}
	}

	// 2. Provisioning: an admin token written into the data partition, as
	// an installer would before shipping the box (README.md).
	token := b.provisionToken(repo, env["MOH_UIDGID"])

	// 3. An admin uploads a track and sets the volume; the power goes
	// right after the last change was acknowledged.
	v = b.boot("admin")
	h := b.waitHealthy(v)
	trackID := b.upload(v, token)
	const volume = 73
	b.api(v, token, "PUT", "/api/v1/volume", fmt.Sprintf(`{"volume":%d}`, volume), nil, http.StatusOK, http.StatusNoContent)
	time.Sleep(time.Duration(rng.Int64N(int64(2 * time.Second))))
	v.PowerCut()

	// 4. Power cuts at random moments; after each, a boot that must play by
	// itself with the library and settings intact.
	var audioTimes []float64
	var last *vm
	for i := 1; i <= cuts; i++ {
		v := b.boot(fmt.Sprintf("cut%02d", i))
		at := time.Duration(rng.Int64N(int64(h + h/3 + 10*time.Second)))
		phase := b.cutAt(v, at)
		t.Logf("power cut %d at %.1f s after power-on (%s)", i, at.Seconds(), phase)

		v = b.boot(fmt.Sprintf("after%02d", i))
		healthy := b.waitHealthy(v)
		w := b.waitAudio(v)
		audioTimes = append(audioTimes, w.FirstAudio.Sub(v.Start).Seconds())
		b.verify(v, w, token, trackID, volume)
		t.Logf("after cut %d: /healthz 200 after %.1f s, first audio after %.1f s; track, playlist and volume intact",
			i, healthy.Seconds(), w.FirstAudio.Sub(v.Start).Seconds())
		w.Close()
		if i < cuts {
			time.Sleep(time.Duration(rng.Int64N(int64(5 * time.Second))))
			v.PowerCut()
		} else {
			last = v
		}
	}
	if last == nil {
		last = b.boot("flash")
		b.waitHealthy(last)
	}
	sort.Float64s(audioTimes)
	if len(audioTimes) > 0 {
		t.Logf("RESULT boot to first audio after a power cut: min %.1f s, median %.1f s, max %.1f s over %d boots",
			audioTimes[0], audioTimes[len(audioTimes)/2], audioTimes[len(audioTimes)-1], len(audioTimes))
	}

	// 5. Flash budget over steady playback (with MOH_UPDATE_TEST=1,
	// while the host makes the update bundles).
	if envInt("MOH_UPDATE_TEST", 0) == 0 {
		b.flashBudget(last, token, time.Duration(flashMinutes)*time.Minute)
		last.PowerCut()
		return
	}
	var (
		bs      *bundles
		bundErr error
	)
	made := make(chan struct{})
	go func() {
		defer close(made)
		bs, bundErr = makeBundles(repo, filepath.Dir(img), dir, env["MOH_VERSION"])
	}()
	b.flashBudget(last, token, time.Duration(flashMinutes)*time.Minute)
	<-made
	if bundErr != nil {
		t.Fatal(bundErr)
	}

	// 6. System updates (make image-update-test).
	last = b.testUpdates(last, token, env, bs, rng, installCuts)
	last.PowerCut()
}

// box drives the virtual appliance through the test.
type box struct {
	t           *testing.T
	dir         string
	disk        string
	bootTimeout time.Duration
	running     *vm
}

func (b *box) boot(name string) *vm {
	b.t.Helper()
	v, err := startVM(vmOptions{Disk: b.disk, Dir: b.dir, Name: name, GuestPort: 8080})
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(v.PowerCut)
	b.running = v
	return v
}

// client is a new client for one request. Keep-alives are off: a client
// per request that kept its connection open would leave one idle
// connection on the box per poll, and the box refuses a 33rd from one
// address (webui's connection guard), which a poll then sees as EOF.
func (b *box) client() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the box's self-signed certificate
			DisableKeepAlives: true,
		},
	}
}

func (b *box) url(v *vm, path string) string {
	return fmt.Sprintf("https://127.0.0.1:%d%s", v.Port, path)
}

// waitHealthy polls /healthz until it answers 200 and returns the time since
// power-on.
func (b *box) waitHealthy(v *vm) time.Duration {
	b.t.Helper()
	return b.waitHealthySince(v, v.Start)
}

// waitHealthySince is waitHealthy for a boot that began at since (a box
// that rebooted by itself inside one QEMU run).
func (b *box) waitHealthySince(v *vm, since time.Time) time.Duration {
	b.t.Helper()
	c := b.client()
	c.Timeout = 3 * time.Second
	deadline := since.Add(b.bootTimeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		if gone, err := v.Exited(); gone {
			b.t.Fatalf("QEMU exited while waiting for /healthz: %v (serial log %s)", err, v.Serial)
		}
		resp, err := c.Get(b.url(v, "/healthz"))
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(since)
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.t.Fatalf("/healthz not 200 within %v (last: %s); serial log:\n%s", b.bootTimeout, last, tailFile(v.Serial, 6000))
	return 0
}

// waitAudio follows the VM's WAV recording until it holds audible sound.
func (b *box) waitAudio(v *vm) *wavTail {
	b.t.Helper()
	w := &wavTail{path: v.WAV}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if err := w.poll(); err != nil {
			b.t.Fatal(err)
		}
		if !w.FirstAudio.IsZero() {
			return w
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("no audible sound recorded from the box (%s, %d frames)", v.WAV, w.frames)
	return nil
}

func (b *box) waitFrames(v *vm, w *wavTail, frames int) {
	b.t.Helper()
	deadline := time.Now().Add(time.Duration(frames/44100+60) * time.Second)
	for w.frames < frames {
		if time.Now().After(deadline) {
			b.t.Fatalf("recording stuck at %d of %d frames", w.frames, frames)
		}
		time.Sleep(200 * time.Millisecond)
		if err := w.poll(); err != nil {
			b.t.Fatal(err)
		}
	}
}

// cutAt kills the VM at the given time after power-on and says in which
// phase the cut came.
func (b *box) cutAt(v *vm, at time.Duration) string {
	c := b.client()
	c.Timeout = time.Second
	phase := "before /healthz was 200"
	for time.Since(v.Start) < at {
		if phase != "while playing" {
			if resp, err := c.Get(b.url(v, "/healthz")); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					phase = "while playing"
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	v.PowerCut()
	return phase
}

// verify checks a box after a power cut: the uploaded track is still in the
// library and on air, the volume setting is still there, and sound comes
// out.
func (b *box) verify(v *vm, w *wavTail, token, trackID string, volume int) {
	b.t.Helper()
	var tracks struct {
		Tracks []struct {
			ID string `json:"id"`
		} `json:"tracks"`
	}
	b.api(v, token, "GET", "/api/v1/tracks", "", &tracks, http.StatusOK)
	if len(tracks.Tracks) != 1 || tracks.Tracks[0].ID != trackID {
		b.t.Fatalf("library after the power cut: %+v, want just %s", tracks.Tracks, trackID)
	}
	var st struct {
		Volume   int  `json:"volume"`
		Fallback bool `json:"fallback"`
		Track    *struct {
			ID string `json:"id"`
		} `json:"track"`
	}
	b.api(v, token, "GET", "/api/v1/status", "", &st, http.StatusOK)
	if st.Volume != volume {
		b.t.Fatalf("volume after the power cut: %d, want %d", st.Volume, volume)
	}
	if st.Fallback || st.Track == nil || st.Track.ID != trackID {
		b.t.Fatalf("on air after the power cut: %+v, want track %s", st, trackID)
	}
	// Two more seconds of recording, which must be sound.
	b.waitFrames(v, w, w.frames+2*44100)
	if rms, ok := w.lastRMS(2 * time.Second); !ok || rms < 0.01 {
		b.t.Fatalf("the box is not audible after the power cut (rms %.4f)", rms)
	}
}

func (b *box) api(v *vm, token, method, path, body string, out any, want ...int) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.url(v, path), strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.client().Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	ok := false
	for _, code := range want {
		ok = ok || resp.StatusCode == code
	}
	if !ok {
		b.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			b.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
}

// upload sends an eight-second tone, made on the host, through the API.
func (b *box) upload(v *vm, token string) string {
	b.t.Helper()
	wav := filepath.Join(b.dir, "tone.wav")
	mp3 := filepath.Join(b.dir, "tone.mp3")
	run(b.t, "sox", "-n", "-r", "44100", "-c", "2", "-b", "16", wav, "synth", "8", "sine", "523", "sine", "659", "gain", "-6")
	run(b.t, "lame", "--silent", "-b", "128", wav, mp3)
	data, err := os.ReadFile(mp3)
	if err != nil {
		b.t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "imagetest-tone.mp3")
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", b.url(v, "/api/v1/tracks"), &body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	c := b.client()
	c.Timeout = 5 * time.Minute // the box decodes, measures and re-encodes it
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		b.t.Fatalf("upload: %d %s", resp.StatusCode, out)
	}
	var tr struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &tr); err != nil || tr.ID == "" {
		b.t.Fatalf("upload answer %s: %v", out, err)
	}
	b.t.Logf("uploaded track %s", tr.ID)
	return tr.ID
}

// provisionToken puts an admin token into the box's data partition while
// the box is off: it copies the partition's files out (debugfs), runs the
// host's mohd token create on them as the box's moh user, and writes the
// partition back with image/mkdata.sh, the recipe's own tool.
func (b *box) provisionToken(repo, uidgid string) string {
	b.t.Helper()
	var pt struct {
		PartitionTable struct {
			Partitions []struct {
				Start int64 `json:"start"`
				Size  int64 `json:"size"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(output(b.t, "sfdisk", "-J", b.disk), &pt); err != nil {
		b.t.Fatal(err)
	}
	if len(pt.PartitionTable.Partitions) != 4 {
		b.t.Fatalf("want 4 partitions (boot, slots A and B, data), got %+v", pt)
	}
	p4 := pt.PartitionTable.Partitions[3]
	off, size := p4.Start*512, p4.Size*512
	disk, err := os.OpenFile(b.disk, os.O_RDWR, 0)
	if err != nil {
		b.t.Fatal(err)
	}
	defer disk.Close()
	part := filepath.Join(b.dir, "data.ext4")
	f, err := os.Create(part)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := io.Copy(f, io.NewSectionReader(disk, off, size)); err != nil {
		b.t.Fatal(err)
	}
	f.Close()
	// The moh user runs mohd token create, so the tree and the binary live
	// in a directory it can reach (the test's temp dir is private).
	prov, err := os.MkdirTemp("", "moh-imagetest-provision-")
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { os.RemoveAll(prov) })
	if err := os.Chmod(prov, 0o755); err != nil {
		b.t.Fatal(err)
	}
	tree := filepath.Join(prov, "tree")
	os.MkdirAll(tree, 0o755)
	// The box lost power: what mohd fsynced may still sit only in the
	// ext4 journal. debugfs reads the raw filesystem, so replay the
	// journal first, as the box's own mount would (exit 1: corrected).
	if out, err := exec.Command("e2fsck", "-fy", part).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			b.t.Fatalf("e2fsck of the data partition: %v\n%s", err, out)
		}
	}
	run(b.t, "debugfs", "-R", "rdump / "+tree, part)
	data := tree
	if entries, _ := os.ReadDir(tree); len(entries) == 1 && entries[0].IsDir() && entries[0].Name() != "library" {
		data = filepath.Join(tree, entries[0].Name()) // rdump of "/" may nest one level
	}
	os.RemoveAll(filepath.Join(data, "lost+found"))
	b.t.Logf("data partition after first boot holds: %s", listTree(data))
	for _, want := range []string{"device-id", "tls-cert.pem", "tls-key.pem"} {
		if _, err := os.Stat(filepath.Join(data, want)); err != nil {
			b.t.Errorf("first boot did not store %s on the data partition: %v", want, err)
		}
	}

	mohd := filepath.Join(prov, "mohd")
	if bin := os.Getenv("MOHD_BIN"); bin != "" {
		run(b.t, "install", "-m", "0755", bin, mohd)
	} else {
		cmd := exec.Command("go", "build", "-o", mohd, "./cmd/mohd")
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.t.Fatalf("build mohd: %v\n%s", err, out)
		}
	}
	uid, gid := parseUIDGID(b.t, uidgid)
	cmd := exec.Command(mohd, "token", "create", "--scope", "admin", "--name", "imagetest", "--data", data)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.t.Fatalf("mohd token create: %v\n%s", err, stderr.String())
	}
	token := strings.TrimSpace(stdout.String())
	if token == "" || strings.ContainsAny(token, " \n") {
		b.t.Fatalf("mohd token create printed %q", stdout.String())
	}
	newfs := filepath.Join(b.dir, "data-new.ext4")
	run(b.t, filepath.Join(repo, "image", "mkdata.sh"), data, newfs, fmt.Sprintf("%dk", size/1024), uidgid)
	nf, err := os.Open(newfs)
	if err != nil {
		b.t.Fatal(err)
	}
	defer nf.Close()
	if n, err := io.Copy(io.NewOffsetWriter(disk, off), nf); err != nil || n != size {
		b.t.Fatalf("write data partition: %d of %d bytes: %v", n, size, err)
	}
	if err := disk.Sync(); err != nil {
		b.t.Fatal(err)
	}
	os.Remove(part)
	os.Remove(newfs)
	return token
}

// flashBudget measures what the guest writes to its disk over steady
// playback, while checking that it keeps playing. Steady playback starts
// once the PCM cache has built what it wants: a build writes each track
// once (a boot after a cut mid-build writes it again), and on a slow TCG
// guest, at the build's low duty, it outlasts the boot by minutes.
func (b *box) flashBudget(v *vm, token string, d time.Duration) {
	b.t.Helper()
	b.waitPCMCache(v, token, 10*time.Minute)
	time.Sleep(30 * time.Second) // let the boot's own writes (journal replay, resize) and the build's settle
	ctx := context.Background()
	w0, err := v.DiskWrittenBytes(ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	start := time.Now()
	c := b.client()
	var perMinute []int64
	prev := w0
	for time.Since(start) < d {
		time.Sleep(time.Minute)
		resp, err := c.Get(b.url(v, "/healthz"))
		if err != nil {
			b.t.Fatalf("healthz during the flash measurement: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.t.Fatalf("healthz %d during the flash measurement", resp.StatusCode)
		}
		w, err := v.DiskWrittenBytes(ctx)
		if err != nil {
			b.t.Fatal(err)
		}
		perMinute = append(perMinute, w-prev)
		prev = w
	}
	total := prev - w0
	b.t.Logf("RESULT flash budget: %d bytes written to the disk in %.1f min of steady playback (per minute: %v); target < 1 MB",
		total, time.Since(start).Minutes(), perMinute)
	if total >= 1<<20 {
		b.t.Errorf("steady playback wrote %d bytes, budget is 1 MiB", total)
	}
}

// waitPCMCache waits until the box's PCM cache has no build pending and
// says how long that took after the call and how many files it wrote.
func (b *box) waitPCMCache(v *vm, token string, timeout time.Duration) {
	b.t.Helper()
	start := time.Now()
	for {
		var st struct {
			PCMCache *struct {
				Pending int `json:"pending"`
				Built   int `json:"built"`
			} `json:"pcm_cache"`
		}
		b.api(v, token, "GET", "/api/v1/status", "", &st, http.StatusOK)
		if st.PCMCache == nil {
			b.t.Fatal("the status has no pcm_cache: the direct backend's cache is off or not reported")
		}
		if st.PCMCache.Pending == 0 {
			b.t.Logf("RESULT PCM cache: nothing pending %.1f s into the measurement's wait, %d files built since mohd started", time.Since(start).Seconds(), st.PCMCache.Built)
			return
		}
		if time.Since(start) > timeout {
			b.t.Fatalf("the PCM cache still builds %d tracks after %v", st.PCMCache.Pending, timeout)
		}
		time.Sleep(2 * time.Second)
	}
}

// keepArtifacts copies the recordings and serial logs of a failed run out
// of the temp dir (which is removed) for a post-mortem.
func keepArtifacts(t *testing.T, dir, to string) {
	if !t.Failed() {
		return
	}
	if d := os.Getenv("MOH_IMAGE_ARTIFACTS"); d != "" {
		to = d
	}
	os.RemoveAll(to)
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Log(err)
		return
	}
	for _, pat := range []string{"*.wav", "*.serial.log"} {
		files, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				os.WriteFile(filepath.Join(to, filepath.Base(f)), b, 0o644)
			}
		}
	}
	t.Logf("recordings and serial logs kept in %s", to)
}

func decodeMP3(t *testing.T, path string) []float64 {
	t.Helper()
	cmd := exec.Command("mpg123", "-q", "-s", "-r", "44100", "--stereo", "-e", "s16", path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	s := make([]int16, len(out)/2)
	for i := range s {
		s[i] = int16(uint16(out[2*i]) | uint16(out[2*i+1])<<8)
	}
	return mono(s, 2)
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func output(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("image manifest: %v", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m
}

func parseUIDGID(t *testing.T, s string) (uint32, uint32) {
	t.Helper()
	u, g, _ := strings.Cut(s, ":")
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad MOH_UIDGID %q", s)
	}
	return uint32(uid), uint32(gid)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n >= 0 {
		return n
	}
	return def
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func listTree(dir string) string {
	var names []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return nil
	})
	return strings.Join(names, " ")
}
