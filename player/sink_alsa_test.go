package player

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func needAplay(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("aplay"); err != nil {
		t.Fatal("aplay not installed (Debian package alsa-utils; make test installs it)")
	}
}

// processGone reports whether pid no longer runs (reaped, or a zombie
// waiting for a reaper that is not ours).
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ALSA's "null" device exists on every ALSA system, card or not: the real
// aplay opens it and takes audio (unpaced).
func TestALSASinkNullDevice(t *testing.T) {
	needAplay(t)
	s, err := OpenSink(context.Background(), Output{Kind: OutputALSA, Device: "null"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := s.(interface{ PID() int })
	if !ok {
		t.Fatal("alsa sink has no PID method")
	}
	pid := p.PID()
	if pid <= 0 || processGone(pid) {
		t.Fatalf("aplay pid %d not running", pid)
	}
	buf := levelTestSine(441, 10000, 4410, true, true)
	for range 20 {
		if n, err := s.Write(buf); err != nil || n != len(buf) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid) {
		t.Fatalf("aplay %d still there after Close", pid)
	}
	if _, err := s.Write(buf); !errors.Is(err, ErrSinkClosed) {
		t.Fatalf("Write after Close = %v, want ErrSinkClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func TestALSASinkMissingDevice(t *testing.T) {
	needAplay(t)
	start := time.Now()
	_, err := OpenSink(context.Background(), Output{Kind: OutputALSA, Device: "hw:9,0"}, nil)
	want := "alsa sink: aplay exited: audio open error: No such file or directory (exit status 1)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("reporting a missing device took %v", el)
	}
}

func TestALSASinkAplayKilledMidStream(t *testing.T) {
	needAplay(t)
	s, err := OpenALSASink(context.Background(), "null", ALSASinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, 4096)
	if _, err := s.Write(buf); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(s.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Exited():
	case <-time.After(3 * time.Second):
		t.Fatal("Exited not closed after aplay was killed")
	}
	_, err = s.Write(buf)
	if err == nil || !strings.Contains(err.Error(), "alsa sink: aplay exited") || !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("Write after aplay died = %v, want an aplay-exited error", err)
	}
}

// fakeAplay writes a stand-in for aplay that opens "the device" fine but
// never reads, with a child, ignoring SIGTERM: the worst a wedged audio
// stack does. It is beside the real-aplay tests, for fault injection only.
func fakeAplay(t *testing.T) (bin, childPIDFile string) {
	t.Helper()
	dir := t.TempDir()
	childPIDFile = filepath.Join(dir, "child.pid")
	bin = filepath.Join(dir, "aplay")
	script := "#!/bin/sh\ntrap '' TERM\nsleep 60 &\necho $! > " + childPIDFile + "\nwait\nwait\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, childPIDFile
}

func TestALSASinkStalledAplay(t *testing.T) {
	bin, childFile := fakeAplay(t)
	s, err := OpenALSASink(context.Background(), "", ALSASinkOptions{Aplay: bin, WriteTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var werr error
	for time.Since(start) < 5*time.Second && werr == nil {
		_, werr = s.Write(make([]byte, 4096))
	}
	if werr == nil || !strings.Contains(werr.Error(), "aplay took no audio for 300ms") {
		t.Fatalf("Write to a wedged aplay = %v, want a stall error", werr)
	}

	var child int
	deadline := time.Now().Add(3 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		b, _ := os.ReadFile(childFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(10 * time.Millisecond)
	}
	if child == 0 {
		t.Fatal("fake aplay did not start its child")
	}
	pid := s.PID()
	s.Close() // SIGTERM is ignored: Close must escalate to SIGKILL on the group
	if !processGone(pid) {
		t.Fatalf("aplay %d survived Close", pid)
	}
	waitGone(t, child) // nothing orphaned
}

func TestALSASinkCloseWakesBlockedWrite(t *testing.T) {
	bin, _ := fakeAplay(t)
	s, err := OpenALSASink(context.Background(), "", ALSASinkOptions{Aplay: bin, WriteTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	checkCloseWakesWrite(t, s, 1<<20, 200*time.Millisecond, 3*time.Second, "to a wedged aplay")
}

func TestALSASinkOpenCancelled(t *testing.T) {
	bin, _ := fakeAplay(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := OpenALSASink(ctx, "", ALSASinkOptions{Aplay: bin})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestALSASinkAplayMissing(t *testing.T) {
	_, err := OpenALSASink(context.Background(), "", ALSASinkOptions{Aplay: filepath.Join(t.TempDir(), "no-aplay")})
	if err == nil || !strings.Contains(err.Error(), "start aplay") {
		t.Fatalf("err = %v, want a start error", err)
	}
}

func TestSinkALSAAvailable(t *testing.T) {
	needAplay(t)
	if err := ALSAAvailable("null"); err != nil {
		t.Fatalf("ALSAAvailable(null) = %v", err)
	}
	err := ALSAAvailable("hw:9,0")
	want := `alsa device "hw:9,0": audio open error: No such file or directory`
	if err == nil || err.Error() != want {
		t.Fatalf("ALSAAvailable(hw:9,0) = %v, want %s", err, want)
	}
	if err := ALSAAvailable("-D"); err == nil {
		t.Fatal("ALSAAvailable accepted a device starting with '-'")
	}
}

func TestSinkAplayArgs(t *testing.T) {
	got := strings.Join(aplayArgs("plughw:CARD=Device", 200*time.Millisecond), " ")
	want := "-q -t raw -f S16_LE -r 44100 -c 2 -D plughw:CARD=Device --buffer-time=200000"
	if got != want {
		t.Fatalf("aplay args = %q\nwant %q", got, want)
	}
	if got := strings.Join(aplayArgs("", 0), " "); got != "-q -t raw -f S16_LE -r 44100 -c 2" {
		t.Fatalf("default-device args = %q", got)
	}
}

// A Write much longer than WriteTimeout must not count as a stall while
// aplay keeps taking audio. A fake aplay that reads at about real time
// stands in for a card, since this machine has none.
func TestSinkALSALongWriteIsNotAStall(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "aplay")
	// 17640 bytes every 100 ms: 176400 B/s, like a sound card.
	script := "#!/bin/sh\nwhile dd bs=17640 count=1 iflag=fullblock status=none of=/dev/null; do sleep 0.1; done\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := OpenALSASink(context.Background(), "", ALSASinkOptions{Aplay: bin, WriteTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, bytesFor(1500*time.Millisecond))
	if n, err := s.Write(buf); err != nil || n != len(buf) {
		t.Fatalf("Write of 1.5 s with a 500 ms stall limit = %d, %v", n, err)
	}
}
