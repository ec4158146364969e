package sysupdate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// `rauc status --detailed` takes about 10 s on the slowest box, too long
// for every GET /api/v1/system. Slots serves its last answer for
// slotsMaxAge; slotsTimeout bounds a rauc that hangs.
const (
	slotsMaxAge  = time.Minute
	slotsTimeout = 2 * time.Minute
)

// slotsCache is the last `rauc status` answer and the refresh in flight.
// gen counts invalidations: an answer serves readers (have) only if no
// Install or Mark ended while it was being read, and a reader joins only a
// refresh that started after the last one. rs stays after an
// invalidation: a reader that cannot wait for the refresh gets it, marked
// Stale.
type slotsCache struct {
	gen  uint64
	read bool // rs holds an answer
	have bool // and it serves readers until at+slotsMaxAge
	rs   RaucStatus
	at   time.Time // when the refresh that read rs began
	call *slotsCall
}

// keep stores an answer; fresh says it may serve readers, as read from
// began on. Called with slotsMu held.
func (c *slotsCache) keep(rs RaucStatus, fresh bool, began time.Time) {
	c.rs, c.read = rs, true
	if fresh {
		c.at, c.have = began, true
	}
}

// slotsCall is one `rauc status` run that every reader arriving during it
// waits for.
type slotsCall struct {
	gen  uint64
	done chan struct{}
	rs   RaucStatus
	err  error
}

// Slots reads both root slots from RAUC, or the last answer while it is
// under a minute old and no Install or Mark has ended since. Readers that
// find no such answer share one `rauc status`; it runs under mohd's
// lifetime, not a reader's, so a reader that leaves does not cut it short
// for the others. A failed run is not kept: the next reader tries again.
//
// A reader whose ctx ends first gets the last answer read, with Stale
// set, if there is one: the first `rauc status` after an install or a
// mark can take longer than an HTTP client waits on a slow box.
func (m *Manager) Slots(ctx context.Context) (RaucStatus, error) {
	if !m.On() {
		return RaucStatus{}, ErrOff
	}
	c := &m.slots
	m.slotsMu.Lock()
	if c.have && m.o.Now().Sub(c.at) < slotsMaxAge {
		rs := c.rs
		m.slotsMu.Unlock()
		return cloneStatus(rs), nil
	}
	call := c.call
	if call == nil || call.gen != c.gen {
		call = &slotsCall{gen: c.gen, done: make(chan struct{})}
		c.call = call
		go m.refreshSlots(call)
	}
	m.slotsMu.Unlock()
	select {
	case <-call.done:
		return cloneStatus(call.rs), call.err
	case <-ctx.Done():
		m.slotsMu.Lock()
		last, ok := c.rs, c.read
		m.slotsMu.Unlock()
		if !ok {
			return RaucStatus{}, fmt.Errorf("%w (%w)", ErrSlotsPending, ctx.Err())
		}
		last = cloneStatus(last)
		last.Stale = true
		return last, nil
	}
}

func (m *Manager) refreshSlots(call *slotsCall) {
	m.mu.Lock()
	base := m.baseCtx
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(base, slotsTimeout)
	defer cancel()
	began := m.o.Now()
	rs, err := m.o.Runner.Status(ctx)
	c := &m.slots
	m.slotsMu.Lock()
	call.rs, call.err = rs, err
	if err == nil {
		c.keep(rs, call.gen == c.gen, began)
	}
	if c.call == call {
		c.call = nil
	}
	m.slotsMu.Unlock()
	close(call.done)
}

// ErrSlotsPending: a reader ran out of time before RAUC's first answer.
var ErrSlotsPending = errors.New("rauc status has not answered yet; ask again")

// raucStatus is the updater's own `rauc status` (boot rules, install):
// always a fresh run, whose answer a reader out of time may get (Slots).
func (m *Manager) raucStatus(ctx context.Context) (RaucStatus, error) {
	rs, err := m.o.Runner.Status(ctx)
	if err == nil {
		m.slotsMu.Lock()
		m.slots.keep(rs, false, time.Time{})
		m.slotsMu.Unlock()
	}
	return rs, err
}

// invalidateSlots drops the kept answer: the next reader runs rauc.
func (m *Manager) invalidateSlots() {
	m.slotsMu.Lock()
	m.slots.gen++
	m.slots.have = false
	m.slotsMu.Unlock()
}

// cloneStatus gives each reader its own slot list.
func cloneStatus(rs RaucStatus) RaucStatus {
	rs.Slots = slices.Clone(rs.Slots)
	return rs
}

// slotsChanging is the Runner a Manager calls: an Install or a Mark
// changes what `rauc status` says, so each one, wherever in the updater
// it is called from, drops the kept answer when it returns.
type slotsChanging struct {
	Runner
	m *Manager
}

func (r slotsChanging) Install(ctx context.Context, bundle string, progress func(pct int, msg string)) error {
	defer r.m.invalidateSlots()
	return r.Runner.Install(ctx, bundle, progress)
}

func (r slotsChanging) Mark(ctx context.Context, good bool) error {
	defer r.m.invalidateSlots()
	return r.Runner.Mark(ctx, good)
}
