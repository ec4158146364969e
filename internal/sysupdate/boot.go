package sysupdate

import (
	"context"
	"fmt"
	"time"
)

// Run evaluates the boot rules every Tick until ctx ends. Installs
// started by Upload or Fetch run under ctx too, so stopping mohd stops
// them (RAUC leaves the slot marked bad; the next start reports failed).
func (m *Manager) Run(ctx context.Context) error {
	if !m.On() {
		<-ctx.Done()
		return nil
	}
	m.mu.Lock()
	m.baseCtx = ctx
	m.mu.Unlock()
	t := time.NewTicker(m.o.Tick)
	defer t.Stop()
	for {
		m.Step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step applies the boot rules once (Run calls it every Tick; tests call
// it with a fake clock):
//   - rebooting, same boot: reboot when reboot_at has come;
//   - rebooting, a new boot: booted the target → trial, else rollback
//     (GRUB fell back);
//   - trial: healthy for HealthyFor → mark-good → good; Deadline passed
//     first → rollback, mark-bad, reboot;
//   - otherwise: once healthy for HealthyFor, mark-good the booted slot
//     if RAUC does not already call it good (no flash write in steady
//     state).
func (m *Manager) Step(ctx context.Context) {
	if !m.On() {
		return
	}
	now := m.o.Now()
	healthy := m.o.Healthy()
	m.mu.Lock()
	if healthy {
		if m.healthySince.IsZero() {
			m.healthySince = now
		}
	} else {
		m.healthySince = time.Time{}
	}
	healthyLong := healthy && now.Sub(m.healthySince) >= m.o.HealthyFor
	st := m.st
	running := m.running
	m.mu.Unlock()
	if running {
		return
	}

	switch st.Phase {
	case PhaseRebooting:
		bootID := m.o.BootID()
		sameBoot := st.BootID == bootID
		if bootID == "" {
			// No boot id to tell a restart from a reboot: the new
			// boot is the target slot up, or any start after mohd
			// asked for the reboot (systemd stops mohd on the way
			// down, so it cannot start again in the same boot).
			booted, ok := m.booted(ctx)
			if !ok {
				return
			}
			sameBoot = booted != st.TargetSlot && !st.RebootRequested
		}
		if sameBoot {
			if st.RebootAt == nil || !now.Before(*st.RebootAt) {
				m.mu.Lock()
				if !m.st.RebootRequested {
					m.st.RebootRequested = true
					m.setLocked(m.st.Phase, m.st.Reason)
				}
				m.mu.Unlock()
				m.reboot(ctx, now, fmt.Sprintf("update: rebooting into slot %s for %s", st.TargetSlot, st.TargetVersion))
			}
			return
		}
		// A new boot: which slot came up?
		booted, ok := m.booted(ctx)
		if !ok {
			return
		}
		if booted == st.TargetSlot {
			m.mu.Lock()
			m.st.RebootAt, m.st.RebootRequested = nil, false
			m.setLocked(PhaseTrial, "")
			m.started = now // the deadline counts from the first start in the new slot
			m.bootChecked = true
			m.mu.Unlock()
			m.event(fmt.Sprintf("update: booted %s in slot %s; on trial until healthy for %s", st.TargetVersion, booted, m.o.HealthyFor))
			return
		}
		m.rollback(fmt.Sprintf("slot %s did not come up (booted %s)", st.TargetSlot, booted))
	case PhaseTrial:
		if !m.bootChecked {
			booted, ok := m.booted(ctx)
			if !ok {
				return
			}
			m.bootChecked = true
			if booted != st.TargetSlot {
				m.rollback(fmt.Sprintf("slot %s did not come up (booted %s)", st.TargetSlot, booted))
				return
			}
		}
		if healthyLong {
			if err := m.o.Runner.Mark(ctx, true); err != nil {
				m.log.Error("mark-good", "err", err)
				return // tried again next tick
			}
			m.set(PhaseGood, "")
			m.mu.Lock()
			m.steadyDone = true
			m.mu.Unlock()
			m.event(fmt.Sprintf("update: now running %s in slot %s", st.TargetVersion, st.TargetSlot))
			return
		}
		m.mu.Lock()
		late := now.Sub(m.started) >= m.o.Deadline
		m.mu.Unlock()
		if late {
			reason := fmt.Sprintf("mohd was not healthy for %s within %s of starting in slot %s", m.o.HealthyFor, m.o.Deadline, st.TargetSlot)
			if err := m.o.Runner.Mark(ctx, false); err != nil {
				m.log.Error("mark-bad", "err", err)
			}
			m.rollback(reason)
			m.mu.Lock()
			m.rebootWanted = true
			m.mu.Unlock()
			m.reboot(ctx, now, "update: rebooting back to slot "+st.FromSlot)
		}
	default:
		m.mu.Lock()
		wanted := m.rebootWanted
		done := m.steadyDone
		m.mu.Unlock()
		if wanted {
			m.reboot(ctx, now, "update: rebooting back to slot "+st.FromSlot)
			return
		}
		if done || !healthyLong {
			return
		}
		rs, err := m.raucStatus(ctx)
		if err != nil {
			m.log.Warn("rauc status", "err", err)
			return
		}
		for _, s := range rs.Slots {
			if !s.Booted {
				continue
			}
			if st.Phase == PhaseRollback && s.Bootname == st.TargetSlot && st.TargetSlot != st.FromSlot {
				// Killed between mark-bad and the reboot: still in
				// the abandoned slot.
				m.mu.Lock()
				m.rebootWanted = true
				m.mu.Unlock()
				return
			}
			if !s.Good {
				if err := m.o.Runner.Mark(ctx, true); err != nil {
					m.log.Error("mark-good", "err", err)
					return
				}
				m.log.Info("marked the booted slot good", "slot", s.Bootname)
			}
		}
		m.mu.Lock()
		m.steadyDone = true
		m.mu.Unlock()
	}
}

// booted asks RAUC which slot is booted.
func (m *Manager) booted(ctx context.Context) (string, bool) {
	rs, err := m.raucStatus(ctx)
	if err != nil {
		m.log.Warn("rauc status", "err", err)
		return "", false
	}
	return rs.Booted, true
}

func (m *Manager) rollback(reason string) {
	m.set(PhaseRollback, reason)
	m.event("update: rollback: " + reason)
}

// reboot runs the reboot command, at most once per rebootRetry.
func (m *Manager) reboot(ctx context.Context, now time.Time, msg string) {
	m.mu.Lock()
	if !m.lastReboot.IsZero() && now.Sub(m.lastReboot) < rebootRetry {
		m.mu.Unlock()
		return
	}
	m.lastReboot = now
	m.mu.Unlock()
	m.event(msg)
	if m.o.Reboot == nil {
		return
	}
	if err := m.o.Reboot(ctx); err != nil {
		m.log.Error("reboot", "err", err)
	}
}
