package testkit

import (
	"os/exec"
	"syscall"
	"testing"
)

// Proc is a child process the test owns: its output goes to Log and it
// dies with the test binary (Pdeathsig); Start also kills and reaps it
// when the test ends.
type Proc struct {
	Cmd  *exec.Cmd
	Log  *LockedBuffer
	done chan struct{}
}

// Start starts cmd (Launch) and kills it (SIGKILL, as a crash would) at
// cleanup; a failure to start ends the test.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p, err := Launch(cmd)
	if err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(p.Kill)
	return p
}

// Launch starts cmd for a test that expects the start itself may fail
// or that ends the process on its own terms. Output goes to the
// returned Log unless cmd already has a Stdout; the process dies with
// the test binary (Pdeathsig), but killing it at the end is the
// caller's.
func Launch(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Cmd: cmd, Log: &LockedBuffer{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.Log
	}
	if cmd.Stderr == nil {
		cmd.Stderr = cmd.Stdout
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

// Kill sends SIGKILL and waits until the process is reaped; killing a
// process that has already exited is a no-op.
func (p *Proc) Kill() {
	p.Cmd.Process.Kill()
	<-p.done
}

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited says whether the process has exited and been reaped.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
