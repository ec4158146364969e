package main

// This file wires the --output list: the paced output the direct backend
// plays to, the telephone signal made from what it plays (phone.Converter
// → phone.Hub), and the network outputs that take the signal from the
// hub. The SIP server and the HTTP streams subscribe to lineOutputs.Hub.

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/mohproject/moh/internal/phone"
	"github.com/mohproject/moh/player"
)

// Bounds of --phone-level: quieter than -40 dBm0 is lost in line noise,
// louder than -6 dBm0 leaves the limiter working all the time.
const minPhoneLevel, maxPhoneLevel = -40.0, -6.0

// pacerPriority is the SCHED_FIFO priority of the telephone signal's
// pacer thread (it sends the RTP multicast packets): low among real-time
// threads (the kernel's own run at 50), above every normal process.
const pacerPriority = 10

// checkOutputs is checkRun's part for --output and --phone-level.
func (c *config) checkOutputs() error {
	outs, err := player.ParseOutputs(c.Output)
	if err != nil {
		return fmt.Errorf("%s--%w", c.source("output"), err) // it names the value and what is allowed
	}
	if c.Backend == "mpd" {
		for _, o := range outs {
			if o.Network() {
				return c.bad("output", c.Output, fmt.Sprintf("the %s output needs --backend direct: the telephone signal is made from the PCM the direct backend plays, MPD plays to its own outputs", o.Kind))
			}
		}
		if len(outs) > 1 {
			return c.bad("output", c.Output, "the MPD backend plays to one output; list several with --backend direct")
		}
	}
	if math.IsNaN(c.PhoneLevel) || c.PhoneLevel < minPhoneLevel || c.PhoneLevel > maxPhoneLevel {
		return c.bad("phone-level", strconv.FormatFloat(c.PhoneLevel, 'g', -1, 64), fmt.Sprintf("want an active level from %g to %g dBm0, e.g. -19", minPhoneLevel, maxPhoneLevel))
	}
	return nil
}

// lineOutputs is the direct backend's outputs and the telephone signal.
type lineOutputs struct {
	// Outputs is the parsed --output list, in order.
	Outputs []player.Output
	// Lines is what the direct backend opens (DirectOptions.OpenSink) and
	// reports (DirectOptions.Outputs). Other outputs add their status
	// with Lines.AddStatus.
	Lines *player.LineOutputs
	// Hub carries the telephone signal: every 20 ms one frame, music or
	// silence, for RTP, SIP calls and HTTP streams.
	Hub *phone.Hub
	// SIP lists the sip outputs, for the SIP server.
	SIP []player.Output

	conv    *phone.Converter
	rtp     []*phone.RTPSender
	rtpOuts []player.Output // the rtp outputs, as rtp
}

// newLineOutputs builds the outputs of outs (ParseOutputs' result) for
// the direct backend.
func newLineOutputs(c *config, outs []player.Output, log *slog.Logger) (*lineOutputs, error) {
	lo := &lineOutputs{Outputs: outs, Hub: phone.NewHub()}
	lo.conv = phone.NewConverter(lo.Hub, phone.ConverterOptions{TargetDBm0: c.PhoneLevel, RealtimePriority: pacerPriority, Logger: log})
	opt := player.LineOutputsOptions{Logger: log, Tee: lo.conv.Write, Clock: true}
	for _, o := range outs {
		switch {
		case o.Paced():
			opt.Paced, opt.Clock = o, false
		case o.Kind == player.OutputRTP:
			pt := uint8(phone.PayloadPCMU)
			if o.Codec == "pcma" {
				pt = phone.PayloadPCMA
			}
			s, err := phone.NewRTPSender(phone.RTPOptions{
				Addr: o.Addr, PayloadType: pt, TTL: o.TTL, DSCP: o.DSCP, Iface: o.Iface, Logger: log,
			})
			if err != nil {
				return nil, fmt.Errorf("output %s: %w", o, err)
			}
			lo.rtp = append(lo.rtp, s)
			lo.rtpOuts = append(lo.rtpOuts, o)
		case o.Kind == player.OutputSIP:
			lo.SIP = append(lo.SIP, o)
		}
	}
	for _, o := range outs {
		if o.Network() {
			opt.Network = true
		}
	}
	lo.Lines = player.NewLineOutputs(opt)
	lo.Lines.AddStatus(func() []player.OutputStatus {
		out := make([]player.OutputStatus, 0, len(lo.rtp))
		for i, s := range lo.rtp {
			st := s.Status()
			out = append(out, player.OutputStatus{
				Kind: player.OutputRTP, Target: lo.rtpOuts[i].Target(), State: st.State,
				LastError: st.LastError, PacketsSent: st.Packets, SendErrors: st.SendErrors,
			})
		}
		return out
	})
	return lo, nil
}

// onTone plays a test tone on the telephone signal at the same level the
// line-out plays it (DirectOptions.OnTone).
func (lo *lineOutputs) onTone(t player.ToneRequest) {
	lo.conv.Tone(t.Hz, t.DBm0(), t.Duration)
}

// Run runs the telephone signal's pacer and the RTP senders until ctx
// ends. A sender's failure is its own (it retries with backoff); none of
// them returns an error that should stop mohd.
func (lo *lineOutputs) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return lo.conv.Run(ctx) })
	for _, s := range lo.rtp {
		g.Go(func() error { return s.Run(ctx, lo.Hub) })
	}
	return g.Wait()
}
