package uploads

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDiskOneReading: health, the status document, /metrics and the fleet
// link ask for the disk many times a second; one statfs serves them all
// until the reading is DiskCacheTTL old or the library changes.
func TestDiskOneReading(t *testing.T) {
	var reads atomic.Int32
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var free atomic.Uint64
	free.Store(1 << 30)
	l := testLib(t, func(o *Options) {
		o.Now = clock
		o.Statfs = func(string) (uint64, uint64, error) {
			reads.Add(1)
			return free.Load(), 8 << 30, nil
		}
	})
	reads.Store(0) // Open may have looked already

	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d := l.Disk(); d.FreeBytes != 1<<30 {
				t.Errorf("free %d, want %d", d.FreeBytes, 1<<30)
			}
		}()
	}
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Fatalf("50 concurrent Disk calls read the disk %d times, want 1", n)
	}

	free.Store(1 << 29)
	advance(time.Second)
	if d := l.Disk(); d.FreeBytes != 1<<30 {
		t.Errorf("1 s later: free %d, want the cached %d", d.FreeBytes, 1<<30)
	}
	advance(1500 * time.Millisecond)
	if d := l.Disk(); d.FreeBytes != 1<<29 {
		t.Errorf("2.5 s later: free %d, want a fresh %d", d.FreeBytes, 1<<29)
	}

	// A change to the library (here: an upload) is seen at once.
	free.Store(1 << 28)
	if _, _, err := ingestFile(t, l, distinctWAV(t, t.TempDir(), 0)); err != nil {
		t.Fatal(err)
	}
	if d := l.Disk(); d.FreeBytes != 1<<28 {
		t.Errorf("after an upload: free %d, want a fresh %d", d.FreeBytes, 1<<28)
	}
	// A clock stepped back does not pin an old reading for ever.
	free.Store(1 << 27)
	advance(-time.Hour)
	if d := l.Disk(); d.FreeBytes != 1<<27 {
		t.Errorf("clock stepped back: free %d, want a fresh %d", d.FreeBytes, 1<<27)
	}
}
