package imagetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// vm is one QEMU run of the appliance image: a PC with the image as its only
// disk, an HDA sound card recorded to a WAV file, a watchdog device, user
// networking with the web port forwarded to the host, and QMP for block
// statistics.
type vm struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when QEMU has exited
	exitErr error         // why, once done is closed
	WAV     string
	Serial  string
	qmp     string
	Port    int
	Start   time.Time
}

type vmOptions struct {
	Disk      string
	Dir       string // where the WAV, serial log and QMP socket go
	Name      string // prefix of those files
	GuestPort int
	MemoryMiB int
}

func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// startVM powers the virtual box on.
func startVM(o vmOptions) (*vm, error) {
	port, err := testkit.FreePort()
	if err != nil {
		return nil, fmt.Errorf("free port: %w", err)
	}
	v := &vm{
		WAV:    filepath.Join(o.Dir, o.Name+".wav"),
		Serial: filepath.Join(o.Dir, o.Name+".serial.log"),
		qmp:    filepath.Join(o.Dir, o.Name+".qmp"),
		Port:   port,
		done:   make(chan struct{}),
	}
	// TCG by default: it is what CI has, and nested KVM on some hosts hangs
	// in GRUB's real-mode loader. MOH_QEMU_ACCEL=kvm speeds up a local run.
	accel := "tcg"
	if os.Getenv("MOH_QEMU_ACCEL") == "kvm" && kvmUsable() {
		accel = "kvm"
	}
	mem := o.MemoryMiB
	if mem == 0 {
		mem = 512
	}
	args := []string{
		"-machine", "pc,accel=" + accel, "-m", strconv.Itoa(mem), "-smp", "1",
		"-drive", "file=" + o.Disk + ",format=raw,if=virtio,id=disk0",
		"-netdev", fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:%d", port, o.GuestPort),
		"-device", "virtio-net-pci,netdev=net0",
		"-audiodev", "wav,id=snd0,path=" + v.WAV + ",out.frequency=44100,out.channels=2,out.format=s16",
		"-device", "intel-hda", "-device", "hda-output,audiodev=snd0",
		"-device", "i6300esb", "-action", "watchdog=reset",
		"-display", "none", "-monitor", "none",
		"-serial", "file:" + v.Serial,
		"-qmp", "unix:" + v.qmp + ",server=on,wait=off",
	}
	v.cmd = exec.Command("qemu-system-x86_64", args...)
	var stderr tail
	v.cmd.Stderr = &stderr
	v.Start = time.Now()
	if err := v.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	go func() {
		err := v.cmd.Wait()
		if err != nil && stderr.String() != "" {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		v.exitErr = err
		close(v.done)
	}()
	return v, nil
}

// PowerCut kills QEMU with SIGKILL: nothing in the guest gets to flush.
// Cutting a VM that is already off does nothing.
func (v *vm) PowerCut() {
	if gone, _ := v.Exited(); gone {
		return
	}
	_ = v.cmd.Process.Kill()
	select {
	case <-v.done:
	case <-time.After(10 * time.Second):
	}
}

// Exited reports whether QEMU is gone, and why.
func (v *vm) Exited() (bool, error) {
	select {
	case <-v.done:
		return true, v.exitErr
	default:
		return false, nil
	}
}

// DiskWrittenBytes is QEMU's count of bytes the guest wrote to its disk.
func (v *vm) DiskWrittenBytes(ctx context.Context) (int64, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", v.qmp)
	if err != nil {
		return 0, fmt.Errorf("dial qmp: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	r := bufio.NewReader(conn)
	if _, err := r.ReadBytes('\n'); err != nil { // greeting
		return 0, fmt.Errorf("qmp greeting: %w", err)
	}
	call := func(cmd string, out any) error {
		if _, err := fmt.Fprintf(conn, `{"execute":%q}`+"\n", cmd); err != nil {
			return err
		}
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return err
			}
			var msg struct {
				Return json.RawMessage `json:"return"`
				Error  *struct {
					Desc string `json:"desc"`
				} `json:"error"`
			}
			if err := json.Unmarshal(line, &msg); err != nil {
				return fmt.Errorf("qmp reply %q: %w", line, err)
			}
			if msg.Error != nil {
				return fmt.Errorf("qmp %s: %s", cmd, msg.Error.Desc)
			}
			if msg.Return != nil { // events have neither
				if out != nil {
					return json.Unmarshal(msg.Return, out)
				}
				return nil
			}
		}
	}
	if err := call("qmp_capabilities", nil); err != nil {
		return 0, err
	}
	var stats []struct {
		Device string `json:"device"`
		Stats  struct {
			WrBytes int64 `json:"wr_bytes"`
		} `json:"stats"`
	}
	if err := call("query-blockstats", &stats); err != nil {
		return 0, err
	}
	for _, s := range stats {
		if s.Device == "disk0" {
			return s.Stats.WrBytes, nil
		}
	}
	return 0, errors.New("qmp: no disk0 in block stats")
}

// tail keeps the last 4 KiB written to it (QEMU's stderr).
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.b) }
