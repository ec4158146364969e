package player

// This file is the direct backend's side of several outputs at once: the
// one paced output (alsa, file or null) that sets the pace of playback,
// and a tee of every byte it plays to the telephone signal, which the
// network outputs (RTP, SIP, HTTP streams) take from there. While network
// outputs are listed, a failing paced output is reopened here on its own
// with backoff, and a null sink keeps the pace meanwhile, so the phones
// play on; with the paced output alone, its failure is the backend's
// fault as before (the watchdog and the ladder see it).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Output states in OutputStatus.
const (
	OutputStateOK = "ok"
	// OutputStateFailed: the output is down; the next attempt is
	// scheduled with backoff.
	OutputStateFailed = "failed"
	// OutputStateRetrying: an attempt to bring it back is under way (a
	// sound card opening, a FIFO waiting for its reader, a socket
	// reopening).
	OutputStateRetrying = "retrying"
)

// OutputStatus is one output as status, the page and /metrics show it.
type OutputStatus struct {
	Kind      string `json:"kind"`   // alsa, file, null, rtp, sip
	Target    string `json:"target"` // device, path or address
	State     string `json:"state"`  // ok, failed, retrying
	LastError string `json:"last_error,omitempty"`
	// PacketsSent and SendErrors count RTP packets (rtp outputs).
	PacketsSent uint64 `json:"packets_sent,omitempty"`
	SendErrors  uint64 `json:"send_errors,omitempty"`
	// SIP is the SIP server's calls (sip outputs only).
	SIP *SIPCalls `json:"sip,omitempty"`
}

// SIPCalls is a SIP music-on-hold server's calls: who is on hold now,
// and how many INVITEs were answered or refused, by result (answered,
// forbidden, busy, not_acceptable, canceled, failed).
type SIPCalls struct {
	CallsActive int               `json:"calls_active"`
	MaxCalls    int               `json:"max_calls"`
	Allow       []string          `json:"allow"`
	Calls       []OutputCall      `json:"calls"`
	Totals      map[string]uint64 `json:"totals"`
}

// OutputCall is one caller on hold.
type OutputCall struct {
	Caller      string    `json:"caller"` // signalling source address
	Media       string    `json:"media"`  // where its RTP goes; empty while it holds
	Codec       string    `json:"codec"`  // PCMU or PCMA
	Since       time.Time `json:"since"`
	PacketsSent uint64    `json:"packets_sent"`
}

// Up reports whether the output carries audio now.
func (s OutputStatus) Up() bool { return s.State == OutputStateOK }

// LineOutputsOptions configure LineOutputs.
type LineOutputsOptions struct {
	// Paced is the output that sets the pace; with only network outputs
	// listed, Clock is set and Paced is a null sink nobody asked for.
	Paced Output
	Clock bool
	// Network is true when network outputs are listed: then the paced
	// output's failures are absorbed here (see the file comment).
	Network bool
	// Tee receives every byte the paced output plays (or would have, while
	// it is down). It must not block. Nil: none.
	Tee func(p []byte)
	// Open opens the paced output; nil means OpenSink.
	Open   func(ctx context.Context, o Output, log *slog.Logger) (Sink, error)
	Logger *slog.Logger
	// Backoff and BackoffMax bound the wait between reopens of a failed
	// paced output; zero means 250 ms and 30 s.
	Backoff, BackoffMax time.Duration
	// OpenTimeout bounds the first attempt at opening the paced output in
	// OpenSink before the null sink takes over (Network only); zero
	// means 3 s.
	OpenTimeout time.Duration
}

// LineOutputs is the set of outputs of the direct backend: give its
// OpenSink to DirectOptions.OpenSink and its Statuses to
// DirectOptions.Outputs.
type LineOutputs struct {
	o   LineOutputsOptions
	log *slog.Logger

	mu      sync.Mutex
	st      OutputStatus
	backoff backoff
	others  []func() []OutputStatus
}

// NewLineOutputs returns the outputs o describes.
func NewLineOutputs(o LineOutputsOptions) *LineOutputs {
	if o.Open == nil {
		o.Open = OpenSink
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Backoff <= 0 {
		o.Backoff = 250 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = 3 * time.Second
	}
	if o.Clock {
		o.Paced = Output{Kind: OutputNull}
		o.Network = true
	}
	return &LineOutputs{
		o:       o,
		log:     o.Logger.With("component", "output", "output", o.Paced.String()),
		st:      OutputStatus{Kind: o.Paced.Kind, Target: o.Paced.Target(), State: OutputStateRetrying},
		backoff: backoff{min: o.Backoff, max: o.BackoffMax},
	}
}

// AddStatus adds the statuses of other outputs (RTP senders, the SIP
// server) to what Statuses reports. Call it before playback starts.
func (l *LineOutputs) AddStatus(f func() []OutputStatus) {
	l.mu.Lock()
	l.others = append(l.others, f)
	l.mu.Unlock()
}

// Statuses is every output's status, the paced one first (unless it is
// only the clock).
func (l *LineOutputs) Statuses() []OutputStatus {
	l.mu.Lock()
	var out []OutputStatus
	if !l.o.Clock {
		out = append(out, l.st)
	}
	others := l.others
	l.mu.Unlock()
	for _, f := range others {
		out = append(out, f()...)
	}
	return out
}

func (l *LineOutputs) set(state string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.State = state
	if err != nil {
		l.st.LastError = err.Error()
	}
}

func (l *LineOutputs) tee(p []byte) {
	if l.o.Tee != nil && len(p) > 0 {
		l.o.Tee(p)
	}
}

// OpenSink opens the paced output for the direct backend. Without
// network outputs it fails as the output does. With them it never fails:
// if the output does not open within OpenTimeout, a null sink keeps the
// pace while the output is reopened in the background.
func (l *LineOutputs) OpenSink(ctx context.Context) (Sink, error) {
	if !l.o.Network {
		l.set(OutputStateRetrying, nil)
		s, err := l.o.Open(ctx, l.o.Paced, l.o.Logger)
		if err != nil {
			l.set(OutputStateFailed, err)
			return nil, err
		}
		l.set(OutputStateOK, nil)
		return &teeSink{Sink: s, l: l}, nil
	}
	m := &multiSink{l: l, fallback: newCatchUpNullSink()}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if l.o.Clock {
		return m, nil // the null sink is the only output of line PCM
	}
	octx, cancel := context.WithTimeout(ctx, l.o.OpenTimeout)
	defer cancel()
	l.set(OutputStateRetrying, nil)
	var s Sink
	var err error
	if l.o.Paced.Kind == OutputNull {
		s = newCatchUpNullSink() // a listed null sink is a clock like the fallback
	} else {
		s, err = l.o.Open(octx, l.o.Paced, l.o.Logger)
	}
	if err != nil {
		m.primaryFailed(fmt.Errorf("open: %w", err))
		return m, nil
	}
	l.set(OutputStateOK, nil)
	m.primary, m.current = s, s
	return m, nil
}

// teeSink is the paced output alone, teed to the telephone signal.
type teeSink struct {
	Sink
	l *LineOutputs
}

func (t *teeSink) Write(p []byte) (int, error) {
	n, err := t.Sink.Write(p)
	t.l.tee(p[:max(0, min(n, len(p)))])
	if err != nil && !errors.Is(err, ErrSinkClosed) {
		t.l.set(OutputStateFailed, err)
	}
	return n, err
}

// multiSink plays to the paced output, or to a null sink while that is
// down, and tees everything to the telephone signal.
type multiSink struct {
	l        *LineOutputs
	fallback *NullSink
	ctx      context.Context // ends at Close: stops a reopen under way
	cancel   context.CancelFunc

	primary Sink  // used by Write's goroutine only
	played  int64 // bytes the primary took since it opened

	mu       sync.Mutex
	pending  Sink // opened in the background, taken over by Write
	reopenOn bool // a reopen goroutine runs
	closed   bool
	current  Sink // what Write writes to now, for Close
}

func (m *multiSink) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return done, ErrSinkClosed
		}
		if m.pending != nil {
			m.primary, m.pending, m.played = m.pending, nil, 0
			m.l.set(OutputStateOK, nil)
			m.l.log.Info("audio output reopened; the network outputs played on meanwhile")
		}
		cur := Sink(m.fallback)
		if m.primary != nil {
			cur = m.primary
		}
		m.current = cur
		m.mu.Unlock()

		n, err := cur.Write(p[done:])
		n = max(0, min(n, len(p)-done))
		m.l.tee(p[done : done+n])
		done += n
		if cur == m.primary {
			m.played += int64(n)
			if m.played >= sinkHealthy*BytesPerFrame {
				m.l.mu.Lock()
				m.l.backoff.reset()
				m.l.mu.Unlock()
			}
		}
		if err != nil {
			if cur != m.primary {
				return done, err // the null sink only fails when closed
			}
			m.primary = nil
			m.mu.Lock()
			closed := m.closed
			m.current = m.fallback
			m.mu.Unlock()
			if closed {
				return done, ErrSinkClosed // Close closed it: not a fault
			}
			if cerr := cur.Close(); cerr != nil && !errors.Is(cerr, ErrSinkClosed) {
				m.l.log.Debug("close failed output", "err", cerr)
			}
			m.primaryFailed(fmt.Errorf("write: %w", err))
		}
	}
	return done, nil
}

// primaryFailed records the paced output's failure and starts its
// reopen in the background, with backoff.
func (m *multiSink) primaryFailed(err error) {
	l := m.l
	l.mu.Lock()
	wait := l.backoff.next()
	changed := err.Error() != l.st.LastError
	l.mu.Unlock()
	l.set(OutputStateFailed, err)
	if changed {
		l.log.Error("audio output failed; the network outputs play on, reopening", "err", err, "retry_in", wait)
	} else {
		l.log.Debug("audio output failed again", "err", err, "retry_in", wait)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.reopenOn {
		return
	}
	m.reopenOn = true
	go m.reopen(wait)
}

func (m *multiSink) reopen(wait time.Duration) {
	l := m.l
	defer func() {
		m.mu.Lock()
		m.reopenOn = false
		m.mu.Unlock()
	}()
	for {
		t := time.NewTimer(wait)
		select {
		case <-m.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		l.set(OutputStateRetrying, nil)
		s, err := l.o.Open(m.ctx, l.o.Paced, l.o.Logger)
		if m.ctx.Err() != nil {
			if s != nil {
				s.Close()
			}
			return
		}
		if err == nil {
			m.mu.Lock()
			if m.closed {
				m.mu.Unlock()
				s.Close()
				return
			}
			m.pending = s
			m.mu.Unlock()
			return
		}
		l.mu.Lock()
		wait = l.backoff.next()
		changed := "open: "+err.Error() != l.st.LastError
		l.mu.Unlock()
		l.set(OutputStateFailed, fmt.Errorf("open: %w", err))
		if changed {
			l.log.Error("audio output still failing", "err", err, "retry_in", wait)
		}
	}
}

// Close ends the sink: a Write in progress returns, a reopen under way
// stops.
func (m *multiSink) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	pending, cur := m.pending, m.current
	m.pending = nil
	m.mu.Unlock()
	m.cancel()
	var errs []error
	if pending != nil {
		errs = append(errs, pending.Close())
	}
	// The Write goroutine owns primary; closing the sink it writes to
	// (which may be primary) is what unblocks it.
	if cur != nil && cur != Sink(m.fallback) {
		errs = append(errs, cur.Close())
	}
	errs = append(errs, m.fallback.Close())
	return errors.Join(errs...)
}

// catchUpResync is how far a null sink that feeds network outputs lets a
// stalled writer fall behind and still catch up in a burst: the telephone
// signal's FIFO (internal/phone) takes the burst, so a stall of the
// decoder on a busy box leaves no gap on the phones. A sound card cannot
// do this; the null sink has no listener of its own to hear the burst.
const catchUpResync = 2 * time.Second

func newCatchUpNullSink() *NullSink {
	ctx, cancel := context.WithCancel(context.Background())
	return &NullSink{w: &pacedWriter{pacer: NewPacer(nil, 0, catchUpResync), ctx: ctx, cancel: cancel}}
}
