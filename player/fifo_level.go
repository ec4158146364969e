package player

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
)

// levelAudibleDBFS is the level above which a block counts as audio for
// LastAudio: well below quiet music, well above dither and hiss.
const levelAudibleDBFS = -60.0

// levelBlockBytes is ~100 ms of PCM, the window LevelDBFS reports.
const levelBlockBytes = SampleRate / 10 * BytesPerFrame

// levelMeter counts the frames that reached an output and measures their
// level, so the watchdog hears what the line hears.
type levelMeter struct {
	now func() time.Time

	mu        sync.Mutex
	frames    uint64
	level     float64
	lastAudio time.Time
	block     []byte
}

func newLevelMeter(now func() time.Time) *levelMeter {
	return &levelMeter{now: now, level: SilenceDBFS, block: make([]byte, 0, levelBlockBytes)}
}

// add takes PCM as it arrives, in any chunking.
func (l *levelMeter) add(pcm []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(pcm) > 0 {
		n := min(levelBlockBytes-len(l.block), len(pcm))
		l.block = append(l.block, pcm[:n]...)
		pcm = pcm[n:]
		if len(l.block) == levelBlockBytes {
			l.frames += levelBlockBytes / BytesPerFrame
			l.level = LevelDBFS(l.block)
			if l.level > levelAudibleDBFS {
				l.lastAudio = l.now()
			}
			l.block = l.block[:0]
		}
	}
}

func (l *levelMeter) snapshot() (frames uint64, level float64, lastAudio time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.frames, l.level, l.lastAudio
}

// ensureFIFO creates the FIFO at path unless one is there. mohd creates
// it, not MPD, because MPD deletes a FIFO it created itself when it
// closes the output, and the reader would be left on a dead inode.
func ensureFIFO(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode()&fs.ModeNamedPipe != 0:
		return nil
	case err == nil:
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("replace %s with a fifo: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("stat level fifo: %w", err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return fmt.Errorf("mkfifo %s: %w", path, err)
	}
	return nil
}

// levelPipeBytes is the pipe buffer mohd gives the level FIFO: 5.9 s of
// audio. MPD's fifo output throws away everything the pipe holds when a
// write finds it full, so with Linux's default 64 KiB (0.37 s) any pause
// of mohd's reader longer than that — a loaded machine, or the machine
// paused as a whole, after which MPD writes what it owes in one burst —
// loses audio from the count (measured: 16384 frames per overflow). 1 MiB
// is the largest an unprivileged process may ask for by default
// (/proc/sys/fs/pipe-max-size).
const levelPipeBytes = 1 << 20

// Linux's fcntl commands for a pipe's buffer size (the syscall package
// does not name them).
const (
	fSetPipeSz = 1031
	fGetPipeSz = 1032
)

// growPipe enlarges the buffer of the pipe behind f to levelPipeBytes, or
// the largest size below it the kernel allows, and returns the size it
// has. The buffer belongs to the FIFO's pipe, which lives as long as mohd
// holds f open, so MPD's writes (re)opening the FIFO get it too.
func growPipe(f *os.File) (int, error) {
	rc, err := f.SyscallConn() // unlike Fd, keeps f non-blocking
	if err != nil {
		return 0, err
	}
	var size int
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		for want := levelPipeBytes; ; want /= 2 {
			r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, uintptr(want))
			if e == 0 {
				size = int(r)
				return
			}
			// EPERM: above pipe-max-size, or the user's pipe quota is
			// used up; a smaller buffer may still be allowed.
			if e != syscall.EPERM || want <= 64<<10 {
				serr = e
				r, _, e = syscall.Syscall(syscall.SYS_FCNTL, fd, fGetPipeSz, 0)
				if e == 0 {
					size = int(r)
				}
				return
			}
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	if serr != nil {
		return size, fmt.Errorf("grow level fifo to %d bytes: %w", levelPipeBytes, serr)
	}
	return size, nil
}

// readLevelFIFO drains the FIFO into m until ctx is done. It opens the
// FIFO read-write so that the open never blocks and MPD closing its end
// (at every pause, stop or restart) never reads as end of file. A pipe
// buffer it could not grow is only logged: the level still works, but a
// pause of mohd longer than the buffer loses audio from the count.
func readLevelFIFO(ctx context.Context, path string, m *levelMeter, log *slog.Logger) error {
	if err := ensureFIFO(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open level fifo: %w", err)
	}
	if size, err := growPipe(f); err != nil {
		log.Warn("level fifo buffer", "err", err, "bytes", size)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.Close() }) // unblocks Read
	defer stop()
	buf := make([]byte, 16384)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			m.add(buf[:n])
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			_ = f.Close()
			return fmt.Errorf("read level fifo: %w", err)
		}
	}
}

// listen keeps draining the level FIFO for the life of the backend.
func (m *MPD) listen(ctx context.Context, fifo string) {
	for ctx.Err() == nil {
		if err := readLevelFIFO(ctx, fifo, m.meter, m.log); err != nil {
			m.log.Error("level fifo", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}
