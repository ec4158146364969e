package phone

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// MP3 stream settings. The telephone signal is encoded as 16 kHz mono
// MPEG-2 Layer III: a standard ISO rate (8 kHz MP3 is the non-ISO
// "MPEG-2.5" extension some decoders refuse), an exact 2:1 of the 8 kHz
// narrowband and equal to the 16 kHz wideband call rates FreeSWITCH runs
// its channels at, so mod_shout's resampler has an integer ratio or
// nothing to do. lame does the 8→16 kHz upsample with its own
// polyphase filter; the content stays band-limited to 3.4 kHz.
const (
	MP3SampleRate = 16000
	MP3Bitrate    = 32 // kbit/s CBR: 144-byte frames of 72 ms
)

// MP3Options configure an MP3Encoder.
type MP3Options struct {
	// Lame is the lame binary; empty means "lame" from PATH.
	Lame   string
	Logger *slog.Logger
}

// MP3Encoder is the one lame process all MP3 listeners share: it is
// started by the first Subscribe and stopped when the last subscription
// closes, so a box nobody listens to spends no CPU on it. Its output is
// cut at frame boundaries and fanned out like the hub's frames: a
// listener whose queue is full is closed (and counted), never waited for.
type MP3Encoder struct {
	hub *Hub
	opt MP3Options
	log *slog.Logger

	mu   sync.Mutex
	subs map[*MP3Sub]struct{}
	run  *mp3Run // the running lame, nil when nobody listens

	starts, failures atomic.Uint64
}

// NewMP3Encoder returns an encoder of hub's signal; it starts nothing.
func NewMP3Encoder(hub *Hub, o MP3Options) *MP3Encoder {
	if o.Lame == "" {
		o.Lame = "lame"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &MP3Encoder{hub: hub, opt: o, log: o.Logger.With("component", "mp3-stream"), subs: map[*MP3Sub]struct{}{}}
}

// MP3Sub is one listener's view of the MP3 stream: whole MP3 frames, in
// order, starting at a frame boundary.
type MP3Sub struct {
	c       chan []byte
	e       *MP3Encoder
	once    sync.Once
	dropped atomic.Bool
}

// C delivers MP3 data; it is closed when the subscription ends (Close,
// the listener fell behind, or lame failed).
func (s *MP3Sub) C() <-chan []byte { return s.c }

// Dropped reports whether the subscription was ended because its queue
// was full.
func (s *MP3Sub) Dropped() bool { return s.dropped.Load() }

// Close ends the subscription; the last one to close stops lame.
func (s *MP3Sub) Close() {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	s.e.removeLocked(s)
}

// removeLocked ends s and stops lame after the last subscriber.
func (e *MP3Encoder) removeLocked(s *MP3Sub) {
	if _, ok := e.subs[s]; !ok {
		return
	}
	delete(e.subs, s)
	s.once.Do(func() { close(s.c) })
	if len(e.subs) == 0 && e.run != nil {
		e.run.stop()
		e.run = nil
	}
}

// Subscribe adds a listener with a queue of depth chunks, starting lame
// if it is the first. It fails when lame cannot be started.
func (e *MP3Encoder) Subscribe(depth int) (*MP3Sub, error) {
	if depth < 1 {
		depth = 1
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.run == nil {
		r, err := e.start()
		if err != nil {
			e.failures.Add(1)
			return nil, err
		}
		e.run = r
	}
	s := &MP3Sub{c: make(chan []byte, depth), e: e}
	e.subs[s] = struct{}{}
	return s, nil
}

// Running reports whether lame runs now.
func (e *MP3Encoder) Running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.run != nil
}

// Starts counts lame processes started; Failures the ones that could not
// start or ended while listeners were attached.
func (e *MP3Encoder) Starts() uint64   { return e.starts.Load() }
func (e *MP3Encoder) Failures() uint64 { return e.failures.Load() }

// mp3Run is one lame process and the goroutines feeding and reading it.
type mp3Run struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *mp3Run) stop() { r.cancel() } // the goroutines reap lame on their own

// start runs lame (e.mu held): raw s16le 8 kHz mono in, 16 kHz MP3 out.
// --nores turns off the bit reservoir so every frame decodes on its own:
// a listener may join at any frame. --flush writes each frame as soon as
// it is made, -t leaves out the Xing/LAME tag (a live stream has no
// length).
func (e *MP3Encoder) start() (*mp3Run, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, e.opt.Lame, "--quiet", "-r", "--little-endian", "--signed", "--bitwidth", "16",
		"-s", "8", "-m", "m", "--resample", "16", "-b", fmt.Sprint(MP3Bitrate), "--cbr", "--nores", "-t", "--flush", "-", "-")
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mp3 encoder: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mp3 encoder: %w", err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("mp3 encoder: start %s: %w", e.opt.Lame, err)
	}
	e.starts.Add(1)
	e.log.Info("mp3 encoder started", "pid", cmd.Process.Pid)
	r := &mp3Run{cancel: cancel, done: make(chan struct{})}
	sub := e.hub.Subscribe("mp3-encoder", 50)
	go func() { // feed: the telephone PCM, as it comes
		defer stdin.Close()
		defer sub.Close()
		buf := make([]byte, 2*FrameSamples)
		for {
			select {
			case <-ctx.Done():
				return
			case f, ok := <-sub.C():
				if !ok {
					return
				}
				for i, v := range f.PCM {
					binary.LittleEndian.PutUint16(buf[2*i:], uint16(v))
				}
				if _, err := stdin.Write(buf); err != nil {
					return
				}
			}
		}
	}()
	go func() { // read: whole frames to every listener, then reap lame
		defer close(r.done)
		err := e.fanOut(bufio.NewReaderSize(stdout, 4096), r)
		stopped := ctx.Err() != nil // stop() asked for it: not a failure
		cancel()
		werr := cmd.Wait()
		if stopped {
			e.log.Info("mp3 encoder stopped: no listeners")
			return
		}
		e.failures.Add(1)
		e.log.Warn("mp3 encoder ended with listeners attached: they are disconnected and reconnect", "err", err, "exit", werr)
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.run == r {
			for s := range e.subs {
				e.removeLocked(s)
			}
		}
	}()
	return r, nil
}

// fanOut reads lame's output frame by frame and offers each frame to
// every subscriber of run r.
func (e *MP3Encoder) fanOut(br *bufio.Reader, r *mp3Run) error {
	for {
		f, err := readMP3Frame(br)
		if err != nil {
			return err
		}
		e.mu.Lock()
		if e.run != r {
			e.mu.Unlock()
			return nil
		}
		for s := range e.subs {
			select {
			case s.c <- f:
			default:
				s.dropped.Store(true)
				e.removeLocked(s)
			}
		}
		e.mu.Unlock()
	}
}

// readMP3Frame returns the next whole MPEG audio frame, skipping any
// bytes before a frame header (lame writes none, but a frame boundary is
// what a joining listener must get).
func readMP3Frame(br *bufio.Reader) ([]byte, error) {
	for {
		h, err := br.Peek(4)
		if err != nil {
			return nil, err
		}
		if n := mp3FrameLen(h); n > 0 {
			f := make([]byte, n)
			if _, err := io.ReadFull(br, f); err != nil {
				return nil, err
			}
			return f, nil
		}
		br.Discard(1)
	}
}

// mp3FrameLen is the length of the Layer III frame whose header is h, or
// 0 when h is not one.
func mp3FrameLen(h []byte) int {
	if h[0] != 0xFF || h[1]&0xE0 != 0xE0 {
		return 0
	}
	ver := (h[1] >> 3) & 3 // 0 MPEG-2.5, 2 MPEG-2, 3 MPEG-1
	layer := (h[1] >> 1) & 3
	bri := int(h[2] >> 4)
	sri := int((h[2] >> 2) & 3)
	pad := int((h[2] >> 1) & 1)
	if ver == 1 || layer != 1 || bri == 0 || bri == 15 || sri == 3 {
		return 0
	}
	rates := [4][3]int{{11025, 12000, 8000}, {}, {22050, 24000, 16000}, {44100, 48000, 32000}}
	sr := rates[ver][sri]
	if ver == 3 {
		kbps := [15]int{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}[bri]
		return 144*kbps*1000/sr + pad
	}
	kbps := [15]int{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160}[bri]
	return 72*kbps*1000/sr + pad
}
