package phone

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// rtClock paces the telephone signal on an OS thread of its own, in the
// kernel: clock_nanosleep to an absolute CLOCK_MONOTONIC deadline wakes
// that thread itself, at its own (real-time, if granted) priority. A Go
// timer would be fired by whichever runtime thread runs timers, at normal
// priority, and on a loaded box that adds milliseconds to every packet.
type rtClock struct {
	t0 unix.Timespec
}

// newRTClock locks the calling goroutine to its thread for good (the
// thread ends with the goroutine, so a real-time thread never returns to
// the runtime's pool), raises it to SCHED_FIFO prio if prio > 0, and
// starts the timeline now. The error says why it is not real time; the
// clock works either way.
func newRTClock(prio int) (*rtClock, error) {
	runtime.LockOSThread()
	c := &rtClock{}
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &c.t0); err != nil {
		return nil, err
	}
	var rtErr error
	if prio > 0 {
		// pid 0 is the calling thread: only the pacer's thread changes.
		attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(prio)}
		if err := unix.SchedSetAttr(0, attr, 0); err != nil {
			rtErr = fmt.Errorf("SCHED_FIFO %d: %w", prio, err)
		}
	}
	return c, rtErr
}

// restart starts the timeline again now.
func (c *rtClock) restart() { unix.ClockGettime(unix.CLOCK_MONOTONIC, &c.t0) }

// sleepUntil sleeps to t0 + d; it returns at once if that has passed.
func (c *rtClock) sleepUntil(d int64) {
	ns := c.t0.Nano() + d
	ts := unix.NsecToTimespec(ns)
	for {
		err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// since is the time from t0 to now, in ns.
func (c *rtClock) since() int64 {
	var now unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	return now.Nano() - c.t0.Nano()
}
