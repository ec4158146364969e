package imagetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// bundle is an update bundle made on the host for the test.
type bundle struct {
	name, path, sha256 string
	size               int64
}

// bundles are the test's bundles: a good one with a newer mohd, one whose
// mohd cannot start, and small ones that must be refused.
type bundles struct {
	good, broken                      bundle
	goodVersion                       string
	foreign, damaged, otherCompatible bundle
}

// makeBundles builds the bundles with the recipe's own image/bundle.sh
// from the image's root filesystem, changed with debugfs: the good one
// carries a mohd with another version, the broken one a mohd.conf that
// mohd refuses at start (a bad release). The refused ones are small: a
// refusal must come before anything is written, whatever the size. It
// runs beside the flash measurement, so it reports errors instead of
// failing the test itself.
func makeBundles(repo, out, dir, version string) (*bundles, error) {
	rootfs := filepath.Join(out, "rootfs.ext4")
	bs := &bundles{goodVersion: version + "-next"}
	sh := func(stdin, name string, args ...string) ([]byte, error) {
		cmd := exec.Command(name, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
		}
		return b, nil
	}
	// debugfsWrite replaces one file of an ext4 image, owned by root.
	debugfsWrite := func(fs, src, dst, mode string) error {
		script := fmt.Sprintf("rm %s\nwrite %s %s\nsif %s mode %s\nsif %s uid 0\nsif %s gid 0\n", dst, src, dst, dst, mode, dst, dst)
		_, err := sh(script, "debugfs", "-w", "-f", "-", fs)
		return err
	}

	mohd := filepath.Join(dir, "mohd-next")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+bs.goodVersion, "-o", mohd, "./cmd/mohd")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build mohd %s: %v\n%s", bs.goodVersion, err, b)
	}
	good := filepath.Join(dir, "rootfs-good.ext4")
	broken := filepath.Join(dir, "rootfs-broken.ext4")
	brokenConf := filepath.Join(dir, "mohd-broken.conf")
	tiny := filepath.Join(dir, "rootfs-tiny.ext4")
	conf, err := sh("", "debugfs", "-R", "cat /etc/moh/mohd.conf", rootfs)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(conf, []byte("\nbackend = direct\n")) {
		return nil, fmt.Errorf("the image's mohd.conf has no backend line:\n%s", conf)
	}
	if err := os.WriteFile(brokenConf, bytes.Replace(conf, []byte("\nbackend = direct\n"), []byte("\nbackend = gramophone\n"), 1), 0o644); err != nil {
		return nil, err
	}
	for _, step := range []func() error{
		func() error { _, err := sh("", "cp", "--sparse=always", rootfs, good); return err },
		func() error { return debugfsWrite(good, mohd, "/usr/local/bin/mohd", "0100755") },
		func() error { _, err := sh("", "cp", "--sparse=always", rootfs, broken); return err },
		func() error { return debugfsWrite(broken, brokenConf, "/etc/moh/mohd.conf", "0100644") },
		func() error { _, err := sh("", "mkfs.ext4", "-q", "-F", "-L", "moh-root", tiny, "8M"); return err },
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	foreignCert, foreignKey, err := makeSigner(filepath.Join(dir, "foreign"), sh)
	if err != nil {
		return nil, err
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	mk := func(dst *bundle, name, rootfs, version string, extra ...string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(dir, name+".raucb")
			c := exec.Command(filepath.Join(repo, "image", "bundle.sh"))
			c.Env = append(os.Environ(), "MOH_IMAGE_OUT="+out, "MOH_BUNDLE_ROOTFS="+rootfs,
				"MOH_BUNDLE_VERSION="+version, "MOH_BUNDLE_OUT="+path)
			c.Env = append(c.Env, extra...)
			b, err := c.CombinedOutput()
			if err == nil {
				var sum string
				var st os.FileInfo
				if sum, err = fileSHA256(path); err == nil {
					st, err = os.Stat(path)
				}
				if err == nil {
					*dst = bundle{name: name, path: path, sha256: sum, size: st.Size()}
					return
				}
			}
			mu.Lock()
			errs = append(errs, fmt.Sprintf("bundle %s: %v\n%s", name, err, b))
			mu.Unlock()
		}()
	}
	mk(&bs.good, "good", good, bs.goodVersion)
	mk(&bs.broken, "broken", broken, version+"-broken")
	mk(&bs.foreign, "foreign", tiny, "foreign", "MOH_SIGNING_CERT="+foreignCert, "MOH_SIGNING_KEY="+foreignKey)
	mk(&bs.otherCompatible, "other-compatible", tiny, "other", "MOH_BUNDLE_COMPATIBLE=other-x86_64")
	mk(&bs.damaged, "damaged", tiny, "damaged")
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	os.Remove(good)
	os.Remove(broken)
	// One byte flipped in the middle of a bundle the fleet's key signed.
	b, err := os.ReadFile(bs.damaged.path)
	if err != nil {
		return nil, err
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(bs.damaged.path, b, 0o644); err != nil {
		return nil, err
	}
	if bs.damaged.sha256, err = fileSHA256(bs.damaged.path); err != nil {
		return nil, err
	}
	return bs, nil
}

// makeSigner makes a CA and a bundle signer that are not the fleet's.
func makeSigner(dir string, sh func(string, string, ...string) ([]byte, error)) (cert, key string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	ca, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	cert, key = filepath.Join(dir, "signing.pem"), filepath.Join(dir, "signing.key")
	csr, ext := filepath.Join(dir, "signing.csr"), filepath.Join(dir, "signing.ext")
	if err := os.WriteFile(ext, []byte("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n"), 0o600); err != nil {
		return "", "", err
	}
	for _, args := range [][]string{
		{"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
			"-subj", "/CN=not the moh fleet", "-keyout", caKey, "-out", ca,
			"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"},
		{"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
			"-subj", "/CN=someone else's signer", "-keyout", key, "-out", csr},
		{"x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-days", "30", "-extfile", ext, "-out", cert},
	} {
		if _, err := sh("", "openssl", args...); err != nil {
			return "", "", err
		}
	}
	return cert, key, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// systemDoc is what the test reads of GET /api/v1/system.
type systemDoc struct {
	Booted     string `json:"booted"`
	SlotsStale bool   `json:"slots_stale"`
	Slots      []struct {
		Bootname string `json:"bootname"`
		Version  string `json:"version"`
		Booted   bool   `json:"booted"`
		Good     bool   `json:"good"`
		State    string `json:"state"`
	} `json:"slots"`
	State struct {
		Phase         string `json:"phase"`
		Progress      int    `json:"progress"`
		Message       string `json:"message"`
		TargetSlot    string `json:"target_slot"`
		TargetVersion string `json:"target_version"`
		Reason        string `json:"reason"`
	} `json:"state"`
}

func (d systemDoc) good(slot string) bool {
	for _, s := range d.Slots {
		if s.Bootname == slot {
			return s.Good
		}
	}
	return false
}

// system reads GET /api/v1/system with RAUC's fresh answer: right after
// a mark or an install the box may answer with the previous slots
// (slots_stale) while `rauc status` runs; those are asked again.
func (b *box) system(v *vm, token string) systemDoc {
	b.t.Helper()
	for tries := 0; ; tries++ {
		var d systemDoc
		b.api(v, token, "GET", "/api/v1/system", "", &d, http.StatusOK)
		if !d.SlotsStale {
			return d
		}
		if tries == 20 {
			b.t.Fatalf("GET /api/v1/system: still the previous slots after %d tries: %+v", tries, d)
		}
		time.Sleep(2 * time.Second)
	}
}

// tryStatus reads the update state, or says the box did not answer.
func (b *box) tryStatus(v *vm, token string) (systemDoc, bool) {
	req, _ := http.NewRequest("GET", b.url(v, "/api/v1/status"), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	c := b.client()
	c.Timeout = 3 * time.Second
	resp, err := c.Do(req)
	if err != nil {
		return systemDoc{}, false
	}
	defer resp.Body.Close()
	var st struct {
		System struct {
			Update struct {
				Phase         string `json:"phase"`
				Progress      int    `json:"progress"`
				TargetSlot    string `json:"target_slot"`
				TargetVersion string `json:"target_version"`
				Reason        string `json:"reason"`
			} `json:"update"`
		} `json:"system"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return systemDoc{}, false
	}
	u := st.System.Update
	var d systemDoc
	d.State.Phase, d.State.Progress = u.Phase, u.Progress
	d.State.TargetSlot, d.State.TargetVersion, d.State.Reason = u.TargetSlot, u.TargetVersion, u.Reason
	return d, true
}

// postBundle uploads a bundle to POST /api/v1/system/update with its
// sha256 and reboot=now. If cutAfter > 0 the power is cut once that many
// bytes of the bundle were sent, and the answer is not waited for.
func (b *box) postBundle(v *vm, token string, bu bundle, sha string, cutAfter int64) (int, string) {
	b.t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		mw.WriteField("sha256", sha)
		mw.WriteField("reboot", "now")
		fw, _ := mw.CreateFormFile("bundle", filepath.Base(bu.path))
		f, err := os.Open(bu.path)
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		defer f.Close()
		var sent int64
		buf := make([]byte, 256<<10)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				if _, werr := fw.Write(buf[:n]); werr != nil {
					return
				}
				sent += int64(n)
				if cutAfter > 0 && sent >= cutAfter {
					v.PowerCut()
					pw.CloseWithError(fmt.Errorf("power cut after %d bytes", sent))
					return
				}
			}
			if err != nil {
				break
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	req, _ := http.NewRequest("POST", b.url(v, "/api/v1/system/update"), pr)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	c := b.client()
	c.Timeout = 15 * time.Minute
	resp, err := c.Do(req)
	if cutAfter > 0 {
		if err == nil {
			resp.Body.Close()
		}
		return 0, ""
	}
	if err != nil {
		b.t.Fatalf("upload %s: %v", bu.name, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// slotHashes hashes the two root slots of the (running) box's disk: a
// refused bundle must leave both as they were.
func (b *box) slotHashes(env map[string]string) [2]string {
	b.t.Helper()
	var h [2]string
	size := int64(envAtoi(b.t, env, "MOH_SLOT_MIB")) << 20
	for i, k := range []string{"MOH_SLOT_A_START_MIB", "MOH_SLOT_B_START_MIB"} {
		f, err := os.Open(b.disk)
		if err != nil {
			b.t.Fatal(err)
		}
		s := sha256.New()
		if _, err := io.Copy(s, io.NewSectionReader(f, int64(envAtoi(b.t, env, k))<<20, size)); err != nil {
			b.t.Fatal(err)
		}
		f.Close()
		h[i] = hex.EncodeToString(s.Sum(nil))[:16]
	}
	return h
}

// waitBootedGood waits until the box runs slot and RAUC calls it good.
// GRUB counts a boot try at every boot, and RAUC calls a slot with a try
// counted not good until mohd marks it good again, after update-healthy
// (60 s) of audio; so after any reboot the booted slot is good only a
// minute or so into the boot.
func (b *box) waitBootedGood(v *vm, token, slot string, timeout time.Duration) systemDoc {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := b.system(v, token)
		if d.Booted == slot && d.good(slot) {
			return d
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("slot %s not booted and good within %v: booted %s, slots %+v; serial log:\n%s", slot, timeout, d.Booted, d.Slots, tailFile(v.Serial, 6000))
		}
		time.Sleep(3 * time.Second)
	}
}

func envAtoi(t *testing.T, env map[string]string, k string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(env[k], &n); err != nil {
		t.Fatalf("image.env: %s=%q", k, env[k])
	}
	return n
}

// waitPhase polls the update phase until it is one of want, and returns
// the state then; a box that is rebooting is waited for.
func (b *box) waitPhase(v *vm, token string, timeout time.Duration, want ...string) systemDoc {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		if gone, err := v.Exited(); gone {
			b.t.Fatalf("QEMU exited while waiting for update phase %v: %v", want, err)
		}
		if d, ok := b.tryStatus(v, token); ok {
			for _, w := range want {
				if d.State.Phase == w {
					return d
				}
			}
			last = fmt.Sprintf("%s %d%% %s", d.State.Phase, d.State.Progress, d.State.Reason)
		}
		time.Sleep(time.Second)
	}
	b.t.Fatalf("update phase not %v within %v (last: %s); serial log:\n%s", want, timeout, last, tailFile(v.Serial, 6000))
	return systemDoc{}
}

// waitDown waits until the box stops answering (it is rebooting).
func (b *box) waitDown(v *vm, token string, timeout time.Duration) time.Time {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, ok := b.tryStatus(v, token); !ok {
			return time.Now()
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.t.Fatalf("the box did not reboot within %v; serial log:\n%s", timeout, tailFile(v.Serial, 6000))
	return time.Time{}
}

// playingAgain checks, after a reboot inside the same QEMU run, that the
// box answers and sound comes out again.
func (b *box) playingAgain(v *vm, token string) {
	b.t.Helper()
	b.waitHealthySince(v, time.Now())
	w := &wavTail{path: v.WAV}
	defer w.Close()
	if err := w.poll(); err != nil {
		b.t.Fatal(err)
	}
	b.waitFrames(v, w, w.frames+3*44100)
	if rms, ok := w.lastRMS(2 * time.Second); !ok || rms < 0.01 {
		b.t.Fatalf("the box is not audible after the reboot (rms %.4f)", rms)
	}
}

// lineWatch follows the recording across a reboot inside one QEMU run and
// keeps the longest stretch of wall-clock time without audible sound, and
// the console lines that came out meanwhile (where the silence goes).
type lineWatch struct {
	mu       sync.Mutex
	last     time.Time
	longest  time.Duration
	gapStart time.Time // the last audible sound before the longest gap
	console  []stampedLine
	stop     chan struct{}
	done     chan struct{}
}

type stampedLine struct {
	at   time.Time
	line string
}

func watchLine(wav, serial string) *lineWatch {
	l := &lineWatch{stop: make(chan struct{}), done: make(chan struct{}), last: time.Now()}
	var consoleAt int64
	if fi, err := os.Stat(serial); err == nil {
		consoleAt = fi.Size()
	}
	var partial string
	go func() {
		defer close(l.done)
		w := &wavTail{path: wav}
		defer w.Close()
		w.poll()
		for {
			select {
			case <-l.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if f, err := os.Open(serial); err == nil {
				if fi, err := f.Stat(); err == nil && fi.Size() < consoleAt {
					consoleAt = 0 // QEMU started again: a new log
				}
				buf, _ := io.ReadAll(io.NewSectionReader(f, consoleAt, 1<<20))
				f.Close()
				consoleAt += int64(len(buf))
				lines := strings.Split(partial+string(buf), "\n")
				partial = lines[len(lines)-1]
				now := time.Now()
				l.mu.Lock()
				for _, ln := range lines[:len(lines)-1] {
					if ln = strings.TrimSpace(ln); ln != "" {
						l.console = append(l.console, stampedLine{now, ln})
					}
				}
				l.mu.Unlock()
			}
			before := w.frames
			w.poll()
			if w.frames == before {
				continue
			}
			if rms, ok := w.lastRMS(time.Duration(float64(w.frames-before)/44100*float64(time.Second)) + time.Millisecond); ok && rms > 0.005 {
				now := time.Now()
				l.mu.Lock()
				if gap := now.Sub(l.last); gap > l.longest {
					l.longest, l.gapStart = gap, l.last
				}
				l.last = now
				l.mu.Unlock()
			}
		}
	}()
	return l
}

// Stop ends the watch and returns the longest silence and the console
// lines printed during it, each with its second into the silence.
func (l *lineWatch) Stop() (time.Duration, string) {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	var sb strings.Builder
	for _, c := range l.console {
		if off := c.at.Sub(l.gapStart); off >= 0 && off <= l.longest {
			fmt.Fprintf(&sb, "  +%5.1f s  %.150s\n", off.Seconds(), c.line)
		}
	}
	return l.longest, sb.String()
}

// testUpdates is the A/B part of TestImage, on a running, provisioned box
// in slot A: refusals, power cuts during the download, the install and the
// new slot's first boot, an update A → B kept, a power cut right after the
// slot was marked good, and a bad release rolled back by itself.
func (b *box) testUpdates(v *vm, token string, env map[string]string, bs *bundles, rng *rand.Rand, installCuts int) *vm {
	t := b.t
	// Booted A and marked good: mohd marks it after a minute of health,
	// which a slow TCG guest may take longer to reach.
	b.waitBootedGood(v, token, "A", 3*time.Minute)

	// Refused: nothing written to either slot, no bundle kept.
	before := b.slotHashes(env)
	for _, c := range []struct {
		bu   bundle
		sha  string
		what string
		want string // in the answer
	}{
		{bs.foreign, bs.foreign.sha256, "signed by another key", "signature verification failed"},
		{bs.damaged, bs.damaged.sha256, "one byte flipped, its own sha256", "signature verification failed"},
		{bs.otherCompatible, bs.otherCompatible.sha256, "for another compatible", "other-x86_64"},
		{bs.good, strings.Repeat("ab", 32), "wrong sha256", "sha256_mismatch"},
	} {
		code, body := b.postBundle(v, token, c.bu, c.sha, 0)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, c.want) {
			t.Fatalf("bundle %s (%s): %d %s, want 422 saying %q", c.bu.name, c.what, code, body, c.want)
		}
		if strings.Contains(body, "certificate purpose") {
			t.Fatalf("bundle %s (%s) refused for its signer's certificate purpose, not for what is wrong with it: %s", c.bu.name, c.what, body)
		}
		t.Logf("refused, %s: 422 %s", c.what, strings.TrimSpace(body))
	}
	if after := b.slotHashes(env); after != before {
		t.Fatalf("a refused bundle changed the slots: %v → %v", before, after)
	}
	t.Logf("RESULT refusals: 4 bad bundles refused with 422, slots A and B unchanged (%s, %s)", before[0], before[1])

	// A power cut during the download.
	cut := bs.good.size/10 + rng.Int64N(bs.good.size*8/10)
	start := time.Now()
	b.postBundle(v, token, bs.good, bs.good.sha256, cut)
	t.Logf("power cut %d: during the upload, %.0f %% sent after %.0f s", 1, float64(cut)*100/float64(bs.good.size), time.Since(start).Seconds())
	v = b.boot("update-after-download-cut")
	b.waitHealthy(v)
	b.playingAgain(v, token)
	if d := b.system(v, token); d.Booted != "A" || d.State.Phase == "installing" || d.State.Phase == "rebooting" {
		t.Fatalf("after a cut during the upload: booted %s, phase %s", d.Booted, d.State.Phase)
	}

	// Power cuts while RAUC writes slot B: slot A boots and plays.
	for i := 0; i < installCuts; i++ {
		code, body := b.postBundle(v, token, bs.good, bs.good.sha256, 0)
		if code != http.StatusAccepted {
			t.Fatalf("good bundle: %d %s", code, body)
		}
		b.waitPhase(v, token, 5*time.Minute, "installing")
		// Cut at a random point of RAUC's progress, while it writes.
		target := 10 + rng.IntN(76)
		var st systemDoc
		for until := time.Now().Add(5 * time.Minute); ; {
			if time.Now().After(until) {
				t.Fatalf("install not at %d %% within 5 min (last: %+v)", target, st.State)
			}
			d, ok := b.tryStatus(v, token)
			if ok {
				st = d
				if d.State.Phase != "installing" || d.State.Progress >= target {
					break
				}
			}
			time.Sleep(300 * time.Millisecond)
		}
		v.PowerCut()
		if st.State.Phase != "installing" {
			t.Fatalf("power cut %d: meant for %d %% of the install, but the install was already %s", 2+i, target, st.State.Phase)
		}
		t.Logf("power cut %d: during the install (%s %d%%)", 2+i, st.State.Phase, st.State.Progress)
		v = b.boot(fmt.Sprintf("update-after-install-cut%d", i+1))
		b.waitHealthy(v)
		b.playingAgain(v, token)
		if d := b.system(v, token); d.Booted != "A" {
			t.Fatalf("after a cut during the install: booted %s, want A", d.Booted)
		}
	}

	// The update A → B, watched on the line from the 202 until the box
	// plays again in slot B.
	code, body := b.postBundle(v, token, bs.good, bs.good.sha256, 0)
	if code != http.StatusAccepted {
		t.Fatalf("good bundle: %d %s", code, body)
	}
	accepted := time.Now()
	line := watchLine(v.WAV, v.Serial)
	b.waitPhase(v, token, 10*time.Minute, "rebooting")
	down := b.waitDown(v, token, 5*time.Minute)
	b.waitHealthySince(v, down)
	b.playingAgain(v, token)
	silence, console := line.Stop()
	t.Logf("RESULT update A → B: %.0f s from the 202 to the reboot (download excluded); longest silence on the line %.1f s (target ≤ 45 s); the console meanwhile:\n%s",
		down.Sub(accepted).Seconds(), silence.Seconds(), console)
	b.waitPhase(v, token, 5*time.Minute, "good")
	d := b.system(v, token)
	if d.Booted != "B" || !d.good("B") || !d.good("A") {
		t.Fatalf("after the update: booted %s, slots %+v; want B good and A kept", d.Booted, d.Slots)
	}
	var ver struct {
		Version string `json:"version"`
	}
	b.api(v, token, "GET", "/api/v1/status", "", &ver, http.StatusOK)
	if ver.Version != bs.goodVersion {
		t.Fatalf("after the update mohd reports version %q, want %q", ver.Version, bs.goodVersion)
	}
	t.Logf("RESULT update A → B: playing %s in slot B, marked good, slot A kept", ver.Version)

	// A power cut right after the mark-good.
	time.Sleep(time.Duration(rng.Int64N(int64(3 * time.Second))))
	v.PowerCut()
	t.Logf("power cut %d: just after slot B was marked good", 2+installCuts)
	v = b.boot("update-after-good-cut")
	b.waitHealthy(v)
	b.playingAgain(v, token)
	b.waitBootedGood(v, token, "B", 3*time.Minute) // after a cut just after mark-good

	// A bad release, installed into slot A: its mohd cannot start; the box
	// goes back to slot B by itself.
	code, body = b.postBundle(v, token, bs.broken, bs.broken.sha256, 0)
	if code != http.StatusAccepted {
		t.Fatalf("broken bundle: %d %s", code, body)
	}
	b.waitPhase(v, token, 10*time.Minute, "rebooting")
	down = b.waitDown(v, token, 5*time.Minute)
	d = b.waitPhase(v, token, 15*time.Minute, "rollback", "good")
	if d.State.Phase != "rollback" {
		t.Fatalf("a release whose mohd cannot start ended %s", d.State.Phase)
	}
	b.playingAgain(v, token)
	back := time.Now()
	d = b.waitBootedGood(v, token, "B", 3*time.Minute) // after the rollback
	t.Logf("RESULT rollback: %q; back in slot B and playing %.0f s after the box went down", d.State.Reason, back.Sub(down).Seconds())

	// The good release again, into slot A, with a power cut in the new
	// slot's first boot: the slot keeps its trial (GRUB gives it three
	// boots) and the update ends good.
	code, body = b.postBundle(v, token, bs.good, bs.good.sha256, 0)
	if code != http.StatusAccepted {
		t.Fatalf("good bundle again: %d %s", code, body)
	}
	b.waitPhase(v, token, 10*time.Minute, "rebooting")
	b.waitDown(v, token, 5*time.Minute)
	at := 5*time.Second + time.Duration(rng.Int64N(int64(30*time.Second)))
	time.Sleep(at)
	v.PowerCut()
	t.Logf("power cut %d: %.0f s into the first boot of slot A with the good release", 3+installCuts, at.Seconds())
	v = b.boot("update-after-trial-cut")
	b.waitHealthy(v)
	b.playingAgain(v, token)
	d = b.waitPhase(v, token, 5*time.Minute, "good", "rollback")
	if d.State.Phase != "good" {
		t.Fatalf("after a cut in the new slot's first boot the update ended %s: %s", d.State.Phase, d.State.Reason)
	}
	if d = b.system(v, token); d.Booted != "A" || !d.good("A") || !d.good("B") {
		t.Fatalf("after the second update: booted %s, slots %+v; want A and B good", d.Booted, d.Slots)
	}
	t.Logf("RESULT %d power cuts during the updates: every boot came up in a good slot (or the slot on trial) and played", 3+installCuts)
	return v
}
