package fleet

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// The broker publishes a box's last will verbatim, so the will must carry
// its own time: when the connection that died began, renewed at every
// reconnection (a box that reconnected after a broker restart must not
// claim it was last up before the restart).
func TestLastWillCarriesConnectionStart(t *testing.T) {
	e := newEnv(t, testGroups)
	child := e.startAgentChild(t, "box-c")
	doc := func(op *Client) StatusDoc {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		docs, _ := op.Statuses(ctx, []string{"box-c"})
		return docs["box-c"]
	}
	op := e.operator(t)
	waitFor(t, 15*time.Second, "box-c online", func() bool { return doc(op).Presence == Online })

	e.broker.Stop()
	restarted := time.Now()
	if err := e.broker.Start(); err != nil {
		t.Fatal(err)
	}
	op = e.operator(t)
	waitFor(t, 30*time.Second, "box-c online again", func() bool { return doc(op).Presence == Online })

	if err := child.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-child.Done()
	killed := time.Now()
	waitFor(t, 15*time.Second, "box-c offline by last will", func() bool { return doc(op).Presence == Offline })
	will := doc(op)
	if will.Time.Before(restarted) || will.Time.After(killed) {
		t.Fatalf("last will time %v, want the reconnection's start, between %v and %v", will.Time, restarted, killed)
	}
	if will.Device != "box-c" || len(will.Status) != 0 {
		t.Fatalf("last will %+v", will)
	}
}

// A box stopped while it has never reached the broker stops at once, in
// the first-connection loop that gives each attempt its own will.
func TestAgentStopsBeforeFirstConnection(t *testing.T) {
	e := newEnv(t, testGroups)
	e.broker.Stop()
	a, err := NewAgent(e.agentOptions(t, "box-b", newFakeOps()))
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := runAgent(a)
	time.Sleep(300 * time.Millisecond) // the first attempt has failed
	cancel()
	select {
	case err := <-done:
		if err != nil || a.Connected() {
			t.Fatalf("Run = %v, connected %v", err, a.Connected())
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
