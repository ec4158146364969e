package sysupdate

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingRunner is the state machine's fake RAUC, counting `rauc status`
// runs and, when gate is set, holding each until gate is closed.
type countingRunner struct {
	*fakeRunner
	statuses atomic.Int32
	gate     chan struct{}
}

func (r *countingRunner) Status(ctx context.Context) (RaucStatus, error) {
	r.statuses.Add(1)
	if r.gate != nil {
		<-r.gate
	}
	return r.fakeRunner.Status(ctx)
}

func newCountingBox(t *testing.T) (*box, *countingRunner, *Manager) {
	b := newBox(t)
	cr := &countingRunner{fakeRunner: b.r}
	m, err := New(Options{Runner: cr, Dir: b.dir, Version: "1.0",
		Now: func() time.Time { return b.now }, BootID: func() string { return b.bootID },
		FreeBytes: func(string) (uint64, error) { return 1 << 40, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return b, cr, m
}

// TestStatusCacheSharesOneRun: readers that arrive while `rauc status`
// runs all wait for that one run and get its answer.
func TestStatusCacheSharesOneRun(t *testing.T) {
	_, cr, m := newCountingBox(t)
	cr.gate = make(chan struct{})
	const n = 50
	var started, done sync.WaitGroup
	var returned atomic.Int32
	results := make([]RaucStatus, n)
	errs := make([]error, n)
	for i := range n {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			results[i], errs[i] = m.Slots(context.Background())
			returned.Add(1)
		}()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // let the readers reach the wait
	if got := returned.Load(); got != 0 {
		t.Fatalf("%d readers returned while rauc status was still running", got)
	}
	if got := cr.statuses.Load(); got != 1 {
		t.Fatalf("%d rauc status runs for %d waiting readers, want 1", got, n)
	}
	close(cr.gate)
	done.Wait()
	if got := cr.statuses.Load(); got != 1 {
		t.Errorf("%d rauc status runs for %d readers, want 1", got, n)
	}
	for i := range n {
		if errs[i] != nil || results[i].Booted != "A" || len(results[i].Slots) != 2 {
			t.Fatalf("reader %d: %+v, %v", i, results[i], errs[i])
		}
	}
}

// TestStatusCacheRefresh: the answer serves reads for under a minute;
// after that, and after every Mark or Install, the next read runs rauc
// status again and sees the change.
func TestStatusCacheRefresh(t *testing.T) {
	b, cr, m := newCountingBox(t)
	ctx := context.Background()
	read := func(what string) RaucStatus {
		t.Helper()
		rs, err := m.Slots(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return rs
	}
	runs := func() int32 { return cr.statuses.Load() }

	read("first read")
	if runs() != 1 {
		t.Fatalf("first read: %d runs, want 1 (nothing kept at start)", runs())
	}
	b.now = b.now.Add(59 * time.Second)
	read("59 s later")
	if runs() != 1 {
		t.Errorf("59 s later: %d runs, want the kept answer", runs())
	}
	b.now = b.now.Add(time.Second)
	read("a minute later")
	if runs() != 2 {
		t.Errorf("a minute later: %d runs, want a new one", runs())
	}

	if err := m.o.Runner.Mark(ctx, false); err != nil {
		t.Fatal(err)
	}
	rs := read("after mark-bad")
	if runs() != 3 {
		t.Errorf("after a mark: %d runs, want 3", runs())
	}
	if rs.Slots[0].Bootname != "A" || rs.Slots[0].Good {
		t.Errorf("after mark-bad of A: %+v", rs.Slots)
	}
	read("again")
	if runs() != 3 {
		t.Errorf("a read after the refresh: %d runs, want the kept answer", runs())
	}

	before := runs()
	b.install(m, "23:59")
	afterInstall := runs() // the updater reads the slots itself before installing
	if afterInstall <= before {
		t.Fatalf("install ran no rauc status (%d, %d)", before, afterInstall)
	}
	rs = read("after install")
	if runs() != afterInstall+1 {
		t.Errorf("after an install: %d runs, want %d", runs(), afterInstall+1)
	}
	if rs.Slots[1].Bootname != "B" || rs.Slots[1].Version != "2.0" {
		t.Errorf("after installing 2.0 into B: %+v", rs.Slots)
	}
}

// TestStatusCacheReaderLeaves: a reader whose request ends stops waiting
// at once; the run it started goes on for the others.
func TestStatusCacheReaderLeaves(t *testing.T) {
	_, cr, m := newCountingBox(t)
	cr.gate = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		_, err := m.Slots(ctx)
		left <- err
	}()
	for cr.statuses.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Errorf("the reader that left got %v", err)
	}
	stay := make(chan error, 1)
	go func() {
		_, err := m.Slots(context.Background())
		stay <- err
	}()
	close(cr.gate)
	if err := <-stay; err != nil {
		t.Errorf("the reader that stayed got %v", err)
	}
	if got := cr.statuses.Load(); got != 1 {
		t.Errorf("%d rauc status runs, want the one both readers shared", got)
	}
}

// TestStatusCacheStaleWhenSlow: after a mark, a reader that cannot wait
// for the slow refresh gets the previous answer marked Stale; once the
// refresh ends, readers get the fresh answer, not stale.
func TestStatusCacheStaleWhenSlow(t *testing.T) {
	_, cr, m := newCountingBox(t)
	if _, err := m.Slots(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.o.Runner.Mark(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	cr.gate = make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	rs, err := m.Slots(ctx)
	cancel()
	if err != nil || !rs.Stale || rs.Booted != "A" || len(rs.Slots) != 2 || !rs.Slots[0].Good {
		t.Fatalf("a reader out of time during the refresh: %+v, %v; want the answer from before the mark, stale", rs, err)
	}
	close(cr.gate)
	rs, err = m.Slots(context.Background())
	if err != nil || rs.Stale || rs.Slots[0].Good {
		t.Fatalf("after the refresh: %+v, %v; want the fresh answer (A marked bad)", rs, err)
	}
	if got := cr.statuses.Load(); got != 2 {
		t.Errorf("%d rauc status runs, want 2 (the first read and the one refresh)", got)
	}
}

// TestStatusCacheNoAnswerYet: with nothing read before, a reader out of
// time gets ErrSlotsPending, not an empty answer.
func TestStatusCacheNoAnswerYet(t *testing.T) {
	_, cr, m := newCountingBox(t)
	cr.gate = make(chan struct{})
	defer close(cr.gate)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if rs, err := m.Slots(ctx); !errors.Is(err, ErrSlotsPending) {
		t.Fatalf("got %+v, %v; want ErrSlotsPending", rs, err)
	}
}
