// Package prio lowers the CPU and I/O priority of the programs moh runs
// in the background (the ingest tools), so they never compete with
// playback. On Linux both the nice value and the I/O priority belong to a
// thread and pass to what it starts: a child lowered once lowers all it
// starts.
package prio

import "syscall"

// Background is the nice value of background work: absolute, not
// relative to mohd (which its unit runs above normal priority), so the
// work yields to playback and to everything else on the box.
const Background = 10

const (
	ioprioWhoProcess = 1 // with a thread id: that thread only
	ioprioClassIdle  = 3 // served only when no one else wants the disk
	ioprioClassShift = 13
)

// Process lowers the process pid (its main thread, and so every thread
// and process it starts from then on) to nice Background and the idle
// I/O class. Call it right after starting a child: anything the child
// did before — microseconds of exec — ran at the parent's priority.
// Lowering one's own child needs no privilege; a failure means the child
// runs at mohd's priority, which is no reason to fail the work.
//
// Only other processes are lowered, never a thread of mohd: a starved
// low-priority thread keeps its P, and the GC's stop-the-world then waits
// for it, stalling the audio goroutine (measured: > 100 ms on a busy box).
// For the same reason a child is not started from a lowered thread (and
// the child's Pdeathsig would fire when that thread ended).
func Process(pid int) {
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, pid, Background)
	_, _, _ = syscall.Syscall(syscall.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(pid), ioprioClassIdle<<ioprioClassShift)
}
