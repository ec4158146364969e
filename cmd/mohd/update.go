package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mohproject/moh/internal/capool"
	"github.com/mohproject/moh/internal/sysinfo"
	"github.com/mohproject/moh/internal/sysupdate"
	"github.com/mohproject/moh/player"
)

// updateConfig is the system update's part of mohd's settings (the keys
// of the image contract: update, update-healthy, update-deadline).
type updateConfig struct {
	Mode          string
	Healthy       time.Duration
	Deadline      time.Duration
	RaucBin       string
	RebootCommand string
}

func updateFlags(fs *flag.FlagSet, u *updateConfig) {
	fs.StringVar(&u.Mode, "update", "off", "system updates: rauc (A/B root slots managed by RAUC) or off")
	fs.DurationVar(&u.Healthy, "update-healthy", sysupdate.DefaultHealthyFor, "health (ok or warning) held this long marks the booted slot good")
	fs.DurationVar(&u.Deadline, "update-deadline", sysupdate.DefaultDeadline, "a new slot not healthy this long after mohd starts in it is marked bad and the box reboots back")
	fs.StringVar(&u.RaucBin, "rauc-bin", "rauc", "rauc binary")
	fs.StringVar(&u.RebootCommand, "reboot-command", "systemctl reboot", "command that reboots the box (system updates and the watchdog's last rung)")
}

// checkUpdate is checkRun's part for the update keys.
func (c *config) checkUpdate() error {
	u := c.Update
	switch u.Mode {
	case "rauc", "off":
	default:
		return c.bad("update", u.Mode, "want rauc or off")
	}
	if u.Healthy < time.Second || u.Healthy > time.Hour {
		return c.bad("update-healthy", u.Healthy.String(), "want a duration from 1s to 1h")
	}
	if u.Deadline <= u.Healthy || u.Deadline > 24*time.Hour {
		return c.bad("update-deadline", u.Deadline.String(), "want a duration longer than update-healthy, at most 24h")
	}
	if len(strings.Fields(u.RebootCommand)) == 0 {
		return c.bad("reboot-command", u.RebootCommand, "want a command")
	}
	return nil
}

// newUpdater builds the system updater; with update = off it is a
// Manager that reports "off" and refuses updates.
func newUpdater(c *config, log *slog.Logger, events *player.EventLog, p *player.Player) (*sysupdate.Manager, error) {
	o := sysupdate.Options{
		Dir:        filepath.Join(c.Data, "update"),
		Version:    version,
		HealthyFor: c.Update.Healthy,
		Deadline:   c.Update.Deadline,
		Logger:     log,
		Healthy: func() bool {
			h := p.Status().Health.State
			return h == player.HealthOK || h == player.HealthWarning
		},
		Event: func(msg string) { events.Add(player.Event{Kind: "update", Message: msg}) },
		Reboot: func(ctx context.Context) error {
			args := strings.Fields(c.Update.RebootCommand)
			out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s: %w: %s", c.Update.RebootCommand, err, strings.TrimSpace(string(out)))
			}
			return nil
		},
	}
	if c.Update.Mode == "rauc" {
		o.Runner = sysupdate.Rauc{Bin: c.Update.RaucBin}
		// Bundles come from the company's file server, which the fleet
		// CA usually signs, or from a public one.
		client, err := capool.HTTPClient(c.MQTTCA, 30*time.Minute)
		if err != nil {
			return nil, fmt.Errorf("update: %w", err)
		}
		o.Client = client
	}
	return sysupdate.New(o)
}

// withUpdate adds the update's state to the status document's system
// object.
func withUpdate(read func() *sysinfo.System, upd *sysupdate.Manager) func() *sysinfo.System {
	return func() *sysinfo.System {
		s := read()
		if s == nil {
			s = &sysinfo.System{}
		}
		st := upd.Status()
		s.Update = &st
		return s
	}
}

// Update is the fleet agent's `update` command (fleet.UpdateOps): the
// same as POST /api/v1/system/update with a URL.
func (o fleetOps) Update(ctx context.Context, url, sha256, reboot string) (sysupdate.Status, error) {
	if o.upd == nil {
		return sysupdate.Status{}, sysupdate.ErrOff
	}
	return o.upd.Fetch(ctx, url, sysupdate.Request{SHA256: sha256, Reboot: reboot})
}

// updateMetrics adapts the updater to metrics.UpdateSource.
type updateMetrics struct{ upd *sysupdate.Manager }

func (u updateMetrics) Phase() string     { return string(u.upd.Status().Phase) }
func (u updateMetrics) Rollbacks() uint64 { return u.upd.Rollbacks() }
func (u updateMetrics) Phases() []string {
	out := make([]string, len(sysupdate.Phases))
	for i, p := range sysupdate.Phases {
		out[i] = string(p)
	}
	return out
}
