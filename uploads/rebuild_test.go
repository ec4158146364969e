package uploads

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

func TestRebuildOnNewTarget(t *testing.T) {
	data := t.TempDir()
	l := testLib(t, func(o *Options) { o.DataDir = data })
	tr, _, err := ingestFile(t, l, distinctWAV(t, t.TempDir(), 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Preview(context.Background(), tr.ID); err != nil {
		t.Fatal(err)
	}
	target := -23.0
	l2 := testLib(t, func(o *Options) { o.DataDir = data; o.TargetLUFS = &target })
	testkit.Go(t, l2.Run)
	waitFor(t, "the rendition to be rebuilt", 20*time.Second, func() bool {
		got, _ := l2.Get(tr.ID)
		return got.TargetLUFS == target
	})
	got, _ := l2.Get(tr.ID)
	if math.Abs(got.LoudnessAfter-target) > 0.5 || !got.Added.Equal(tr.Added) || got.Name != tr.Name {
		t.Errorf("rebuilt %+v, want %.0f LUFS and the old name and time", got, target)
	}
	select {
	case <-l2.Changes():
	case <-time.After(5 * time.Second):
		t.Error("no change signalled after the rebuild")
	}
	m := newMeter(44100, 2)
	m.Write(decodeMP3(t, got.Path))
	if math.Abs(m.Integrated()-target) > 0.5 {
		t.Errorf("rendition on disk measures %.2f LUFS", m.Integrated())
	}
	if _, err := l2.Preview(context.Background(), tr.ID); err != nil {
		t.Fatal(err)
	}
}
