package sysupdate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Runner is what the updater needs of RAUC. Rauc runs the real binary;
// tests may put a fake beside it to inject faults the real one cannot.
type Runner interface {
	// Info checks a bundle's signature against the keyring and reads its
	// manifest. Nothing is written.
	Info(ctx context.Context, bundle string) (BundleInfo, error)
	// Install writes the bundle into the inactive slot and makes it the
	// next boot's primary; progress is told percentages as RAUC reports
	// them.
	Install(ctx context.Context, bundle string, progress func(pct int, msg string)) error
	// Status reads the slots.
	Status(ctx context.Context) (RaucStatus, error)
	// Mark marks the booted slot good or bad.
	Mark(ctx context.Context, good bool) error
}

// BundleInfo is what `rauc info` tells of a bundle.
type BundleInfo struct {
	Compatible string `json:"compatible"`
	Version    string `json:"version"`
}

// RaucStatus is what `rauc status` tells of the system.
type RaucStatus struct {
	Compatible string
	Booted     string // bootname of the booted slot
	Primary    string // slot name RAUC will boot next
	Slots      []Slot
	// Stale: this is an earlier answer; RAUC is still being asked
	// (Manager.Slots).
	Stale bool
}

// Slot is one root slot as GET /api/v1/system shows it.
type Slot struct {
	Name       string `json:"name"`
	Bootname   string `json:"bootname"`
	Version    string `json:"version"`
	State      string `json:"state"`
	Booted     bool   `json:"booted"`
	Primary    bool   `json:"primary"`
	BootStatus string `json:"boot_status"`
	Good       bool   `json:"good"`
}

// Rauc runs the rauc binary. mohd calls only the five commands of the
// image contract, so the D-Bus policy of the image can allow just those.
type Rauc struct {
	Bin string // default "rauc"
}

func (r Rauc) bin() string {
	if r.Bin == "" {
		return "rauc"
	}
	return r.Bin
}

// runError carries what rauc said on stderr: its last line is the reason
// an operator needs ("signature verification failed: …").
type runError struct {
	args   []string
	err    error
	stderr string
}

func (e *runError) Error() string {
	msg := lastLine(e.stderr)
	if msg == "" {
		msg = e.err.Error()
	}
	return "rauc " + e.args[0] + ": " + msg
}

func (e *runError) Unwrap() error { return e.err }

// lastLine is the last line of rauc's stderr that is not one of its
// informational "rauc-Message:" lines.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "rauc-Message:") && !strings.Contains(l, "rauc-Message:") {
			return l
		}
	}
	if len(lines) > 0 {
		return strings.TrimSpace(lines[len(lines)-1])
	}
	return ""
}

func (r Rauc) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.bin(), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), &runError{args: args, err: err, stderr: errb.String()}
	}
	return out.Bytes(), nil
}

// Info implements Runner.
func (r Rauc) Info(ctx context.Context, bundle string) (BundleInfo, error) {
	out, err := r.run(ctx, "info", "--output-format=json", bundle)
	if err != nil {
		return BundleInfo{}, err
	}
	var bi BundleInfo
	if err := json.Unmarshal(out, &bi); err != nil {
		return BundleInfo{}, fmt.Errorf("rauc info: parse output: %w", err)
	}
	return bi, nil
}

var progressLine = regexp.MustCompile(`^\s*(\d{1,3})% (.*)$`)

// Install implements Runner; it reads rauc's progress lines as they come.
func (r Rauc) Install(ctx context.Context, bundle string, progress func(int, string)) error {
	args := []string{"install", bundle}
	cmd := exec.CommandContext(ctx, r.bin(), args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	done := make(chan struct{})
	var tail []string
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			if m := progressLine.FindStringSubmatch(line); m != nil {
				if pct, err := strconv.Atoi(m[1]); err == nil && progress != nil {
					progress(pct, m[2])
				}
			} else if strings.TrimSpace(line) != "" {
				tail = append(tail, line)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if err != nil {
		se := errb.String()
		if strings.TrimSpace(se) == "" {
			se = strings.Join(tail, "\n")
		}
		return &runError{args: args, err: err, stderr: se}
	}
	return nil
}

// raucStatusJSON is `rauc status --detailed --output-format=json`.
type raucStatusJSON struct {
	Compatible  string                    `json:"compatible"`
	Booted      string                    `json:"booted"`
	BootPrimary string                    `json:"boot_primary"`
	Slots       []map[string]raucSlotJSON `json:"slots"`
}

type raucSlotJSON struct {
	Class      string `json:"class"`
	Bootname   string `json:"bootname"`
	State      string `json:"state"`
	BootStatus string `json:"boot_status"`
	SlotStatus struct {
		Bundle struct {
			Version *string `json:"version"`
		} `json:"bundle"`
	} `json:"slot_status"`
}

// Status implements Runner.
func (r Rauc) Status(ctx context.Context) (RaucStatus, error) {
	out, err := r.run(ctx, "status", "--detailed", "--output-format=json")
	if err != nil {
		return RaucStatus{}, err
	}
	return parseStatus(out)
}

func parseStatus(raw []byte) (RaucStatus, error) {
	var j raucStatusJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return RaucStatus{}, fmt.Errorf("rauc status: parse output: %w", err)
	}
	st := RaucStatus{Compatible: j.Compatible, Booted: j.Booted, Primary: j.BootPrimary}
	for _, m := range j.Slots {
		for name, s := range m {
			if s.Bootname == "" {
				continue // not a bootable slot (e.g. a data or appfs slot)
			}
			sl := Slot{Name: name, Bootname: s.Bootname, State: s.State,
				Booted: s.Bootname == j.Booted, Primary: name == j.BootPrimary,
				BootStatus: s.BootStatus, Good: s.BootStatus == "good"}
			if v := s.SlotStatus.Bundle.Version; v != nil {
				sl.Version = *v
			}
			st.Slots = append(st.Slots, sl)
		}
	}
	sortSlots(st.Slots)
	return st, nil
}

func sortSlots(s []Slot) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Bootname < s[j-1].Bootname; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Mark implements Runner.
func (r Rauc) Mark(ctx context.Context, good bool) error {
	what := "mark-bad"
	if good {
		what = "mark-good"
	}
	_, err := r.run(ctx, "status", what, "booted")
	return err
}
