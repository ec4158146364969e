package player

// This file is the PCM cache of the direct backend: every track decoded
// once, by the same gapless go-mp3 path that plays it live, into raw s16le
// 44.1 kHz stereo that later passes stream with plain reads. Decoding MP3
// was three quarters of mohd's playback CPU; reading a file the page cache
// holds costs next to nothing, so a fanless box stays cool and a busy one
// has CPU to spare for the line.
//
// The cache is derived data: a file that is missing, short, stale (its MP3
// changed) or unreadable is ignored and the track decodes live until a
// background build, at the lowest CPU and I/O priority, replaces it. It is
// written once per track (when the track first plays without one), never
// in steady playback, atomically, and only within a disk budget: tracks
// beyond it decode live.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/internal/mp3"
)

// PCMBytesPerMinute is what the cache costs per minute of audio:
// 44100 frames of 4 bytes a second (635 MB an hour).
const PCMBytesPerMinute = SampleRate * BytesPerFrame * 60

// pcmHeaderSize is the header in front of the samples: one page, so the
// samples start page-aligned and the reads stay whole pages.
const pcmHeaderSize = 4096

// pcmMagic starts every cache file; the digit is the format version.
const pcmMagic = "MOHPCM1\n"

// buildDuty throttles a build to at most 1/buildDuty of one core (it
// rests longer when the box is busy, since it rests a multiple of the
// wall time a chunk took): 10 minutes of audio were cached in 91 s on the
// busy 2-core test machine, while the track's first pass played live.
const buildDuty = 4

// pcmExt names cache files, so the sweep knows what it may remove.
const pcmExt = ".pcm"

// DefaultPCMCacheShare is the part of the free space (plus what the cache
// already holds) the cache may use when no budget is set: a quarter keeps
// room for uploads and the originals, and on a box with a 16 GB card
// still holds some 6 hours of audio.
const DefaultPCMCacheShare = 4

// PCMCacheOptions configure a PCMCache.
type PCMCacheOptions struct {
	Logger *slog.Logger
	// Dir holds the cache files; it is created if missing.
	Dir string
	// Budget caps the cache in bytes. 0 means 1/DefaultPCMCacheShare of
	// the free space on Dir's filesystem plus what the cache holds;
	// negative turns the cache off (every track decodes live).
	Budget int64
}

// PCMCache is the set of decoded tracks in one directory. Its methods may
// be called from any goroutine.
type PCMCache struct {
	log    *slog.Logger
	dir    string
	budget int64

	mu       sync.Mutex
	queue    []string        // MP3 paths waiting for a build
	queued   map[string]bool // paths in queue or being built
	building bool            // the builder goroutine runs
	refused  map[string]bool // over budget or undecodable: not tried again
	built    int             // cache files written since the cache was made
	idle     chan struct{}   // closed when the builder stops; for tests
}

// PCMCacheStatus says what the cache is doing, for the status document.
// A build decodes a track and writes it to the disk once (10.6 MB a
// minute of audio), so while Pending is above 0 the box writes more and
// uses more CPU than steady playback does.
type PCMCacheStatus struct {
	// Pending counts the tracks waiting to be checked or built, the one
	// being built included.
	Pending int `json:"pending"`
	// Built counts the cache files written since mohd started.
	Built int `json:"built"`
}

// Status is what the cache is doing; ok is false when there is no cache
// or it is off (every track decodes live).
func (c *PCMCache) Status() (st PCMCacheStatus, ok bool) {
	if c == nil || c.budget < 0 {
		return PCMCacheStatus{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return PCMCacheStatus{Pending: len(c.queued), Built: c.built}, true
}

// NewPCMCache returns the cache in o.Dir.
func NewPCMCache(o PCMCacheOptions) *PCMCache {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &PCMCache{
		log:     o.Logger.With("component", "pcmcache"),
		dir:     o.Dir,
		budget:  o.Budget,
		queued:  map[string]bool{},
		refused: map[string]bool{},
	}
}

// Dir is where the cache files live.
func (c *PCMCache) Dir() string { return c.dir }

// pathFor is the cache file of the MP3 at src: named by a hash of the
// path, so a file of the same name elsewhere never collides.
func (c *PCMCache) pathFor(src string) string {
	sum := sha256.Sum256([]byte(src))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:16])+pcmExt)
}

// pcmHeader is what a cache file says about itself and its source: the
// source's path, size and modification time say whether it is still the
// file that was decoded; frames says how long the samples must be.
type pcmHeader struct {
	frames  int64
	srcSize int64
	srcMod  int64 // modification time, Unix ns
	src     string
}

func (h pcmHeader) marshal() ([]byte, error) {
	b := make([]byte, pcmHeaderSize)
	copy(b, pcmMagic)
	binary.LittleEndian.PutUint64(b[8:], uint64(h.frames))
	binary.LittleEndian.PutUint64(b[16:], uint64(h.srcSize))
	binary.LittleEndian.PutUint64(b[24:], uint64(h.srcMod))
	if len(h.src) > pcmHeaderSize-36 {
		return nil, fmt.Errorf("path too long for the cache header (%d bytes)", len(h.src))
	}
	binary.LittleEndian.PutUint32(b[32:], uint32(len(h.src)))
	copy(b[36:], h.src)
	return b, nil
}

func parsePCMHeader(b []byte) (pcmHeader, error) {
	if len(b) < pcmHeaderSize || string(b[:8]) != pcmMagic {
		return pcmHeader{}, errors.New("not a moh PCM cache file")
	}
	h := pcmHeader{
		frames:  int64(binary.LittleEndian.Uint64(b[8:])),
		srcSize: int64(binary.LittleEndian.Uint64(b[16:])),
		srcMod:  int64(binary.LittleEndian.Uint64(b[24:])),
	}
	n := binary.LittleEndian.Uint32(b[32:])
	if h.frames < 0 || n > pcmHeaderSize-36 {
		return pcmHeader{}, errors.New("corrupt PCM cache header")
	}
	h.src = string(b[36 : 36+n])
	return h, nil
}

// open returns the cache file of src (whose stat is srcFI and header
// info) positioned at the first sample, or an error saying why it cannot
// be used: missing, for another file, stale, or not the length the LAME
// tag gives (cut short by a full disk, say).
func (c *PCMCache) open(src string, srcFI os.FileInfo, info MP3Info) (*os.File, int64, error) {
	f, err := os.Open(c.pathFor(src))
	if err != nil {
		return nil, 0, err
	}
	var hb [pcmHeaderSize]byte
	h, err := readPCMHeader(f, hb[:])
	if err == nil {
		err = h.check(src, srcFI, info)
	}
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil && fi.Size() != pcmHeaderSize+h.frames*BytesPerFrame {
			err = fmt.Errorf("cache file holds %d bytes, its header promises %d", fi.Size(), pcmHeaderSize+h.frames*BytesPerFrame)
		}
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, h.frames, nil
}

func readPCMHeader(f *os.File, b []byte) (pcmHeader, error) {
	if _, err := io.ReadFull(f, b); err != nil {
		return pcmHeader{}, fmt.Errorf("read header: %w", err)
	}
	return parsePCMHeader(b)
}

// check says whether h describes the MP3 src as it is now.
func (h pcmHeader) check(src string, fi os.FileInfo, info MP3Info) error {
	switch {
	case h.src != src:
		return errors.New("cache file is for another track")
	case h.srcSize != fi.Size() || h.srcMod != fi.ModTime().UnixNano():
		return errors.New("cache file is stale: the track changed")
	case !info.Gapless || h.frames != info.TotalSamples:
		return fmt.Errorf("cache file holds %d frames, the track %d", h.frames, info.TotalSamples)
	}
	return nil
}

// Want asks for the tracks' cache files to be built in the background,
// those missing or stale, in order. It returns at once and touches no
// disk: the builder goroutine checks each track. A track that could not
// be cached (over the budget, no LAME tag, a write error) is not tried
// again until mohd restarts, so a full disk never becomes a rebuild loop.
func (c *PCMCache) Want(tracks []Track) {
	if c == nil || c.budget < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range tracks {
		if t.Path == "" || c.queued[t.Path] || c.refused[t.Path] {
			continue
		}
		c.queue = append(c.queue, t.Path)
		c.queued[t.Path] = true
	}
	if len(c.queue) > 0 && !c.building {
		c.building = true
		c.idle = make(chan struct{})
		go c.builder(c.idle)
	}
}

// waitIdle blocks until the builder has nothing left to do; for tests.
func (c *PCMCache) waitIdle(ctx context.Context) error {
	c.mu.Lock()
	idle := c.idle
	c.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// builder builds the queued files one by one, throttled (buildDuty) so
// that decoding never takes more than a fraction of one core from the
// audio goroutine or anything else on the box.
//
// It runs at mohd's own priority on purpose. A goroutine on a thread at
// lower priority (nice 10) was measured to cause underruns on a busy box:
// starved by the other processes, that thread kept its P, and the GC's
// stop-the-world waited for it, stalling the audio goroutine by more
// than 100 ms.
func (c *PCMCache) builder(idle chan struct{}) {
	defer close(idle)
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.building = false
			c.mu.Unlock()
			return
		}
		src := c.queue[0]
		c.queue = c.queue[1:]
		c.mu.Unlock()
		err := c.ensure(src)
		c.mu.Lock()
		delete(c.queued, src)
		if err != nil {
			c.refused[src] = true // until mohd restarts: no rebuild loop
		}
		c.mu.Unlock()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Info("track not cached; it decodes live", "path", src, "reason", err)
		}
	}
}

// ensure builds the cache file of src unless a good one exists.
func (c *PCMCache) ensure(src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file")
	}
	info, err := mp3.ReadInfo(f, fi.Size())
	if err != nil {
		return err
	}
	if err := CheckPlayable(info); err != nil {
		return err
	}
	if cf, _, err := c.open(src, fi, info); err == nil {
		cf.Close()
		return nil
	}
	if !info.Gapless {
		return errors.New("no LAME tag: the exact length is not known")
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	need := pcmHeaderSize + info.TotalSamples*BytesPerFrame
	if err := c.fits(need); err != nil {
		return err
	}
	hdr, err := pcmHeader{frames: info.TotalSamples, srcSize: fi.Size(), srcMod: fi.ModTime().UnixNano(), src: src}.marshal()
	if err != nil {
		return err
	}
	dec, err := newGaplessRecovering(f, fi.Size(), info)
	if err != nil {
		return err
	}
	err = atomicfile.Write(c.pathFor(src), 0o644, func(w io.Writer) error {
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		buf := make([]byte, 64<<10)
		var frames int64
		for {
			t0 := time.Now()
			n, err := readRecovering(dec, buf)
			// Rest buildDuty-1 times as long as the decode took.
			time.Sleep(time.Since(t0) * (buildDuty - 1))
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return werr
				}
				frames += int64(n / BytesPerFrame)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
		}
		if frames != info.TotalSamples || dec.Truncated() {
			return fmt.Errorf("decoded %d frames, the LAME tag says %d", frames, info.TotalSamples)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("build cache: %w", err)
	}
	c.mu.Lock()
	c.built++
	c.mu.Unlock()
	c.log.Info("track cached", "path", src, "bytes", need)
	return nil
}

// fits says whether need more bytes stay within the budget, after
// removing cache files whose track is gone.
func (c *PCMCache) fits(need int64) error {
	used := c.sweep()
	budget := c.budget
	if budget == 0 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(c.dir, &st); err != nil {
			return fmt.Errorf("free space: %w", err)
		}
		budget = (int64(st.Bavail)*int64(st.Bsize) + used) / DefaultPCMCacheShare
	}
	if used+need > budget {
		return fmt.Errorf("over the cache budget: %d MB used, %d MB more needed, budget %d MB", used>>20, need>>20, budget>>20)
	}
	return nil
}

// sweep removes cache files whose MP3 no longer exists or changed, and
// returns the bytes the rest hold.
func (c *PCMCache) sweep() int64 {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return 0
	}
	var used int64
	var hb [pcmHeaderSize]byte
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), pcmExt) {
			continue
		}
		p := filepath.Join(c.dir, e.Name())
		fi, err := e.Info()
		if err != nil {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		h, herr := readPCMHeader(f, hb[:])
		f.Close()
		if herr == nil {
			sfi, serr := os.Stat(h.src)
			if serr == nil && sfi.Size() == h.srcSize && sfi.ModTime().UnixNano() == h.srcMod {
				used += fi.Size()
				continue
			}
		}
		if err := os.Remove(p); err == nil {
			c.log.Debug("removed cache file of a track that is gone", "file", e.Name())
		}
	}
	return used
}
