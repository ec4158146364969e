package main

// This file wires the SIP music-on-hold server (internal/sip): its flags,
// their checks, one server per sip output of --output, each fed by the
// telephone signal's hub and reported in the outputs list.

import (
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/mohproject/moh/internal/sip"
	"github.com/mohproject/moh/player"
)

// sipConfig is the SIP server's part of config.
type sipConfig struct {
	Allow      string
	MaxCalls   int
	RTPPorts   string
	RTPTimeout time.Duration

	// parsed by checkSIP
	allow          []string
	rtpMin, rtpMax int
}

// Bounds of --sip-max-calls: each call is a socket pair and 50 packets/s.
const maxSIPCalls = 5000

func sipFlags(fs *flag.FlagSet, s *sipConfig) {
	fs.StringVar(&s.Allow, "sip-allow", "", "comma-separated CIDRs or addresses that may call the SIP server (empty: every call is refused with 403)")
	fs.IntVar(&s.MaxCalls, "sip-max-calls", sip.DefaultMaxCalls, fmt.Sprintf("concurrent SIP calls; above it 486 Busy Here (1 to %d)", maxSIPCalls))
	fs.StringVar(&s.RTPPorts, "sip-rtp-ports", fmt.Sprintf("%d-%d", sip.DefaultRTPMin, sip.DefaultRTPMax), "UDP port range for SIP media: its first free even/odd (RTP, RTCP) pair is shared by every call")
	fs.DurationVar(&s.RTPTimeout, "sip-rtp-timeout", sip.DefaultRTPTimeout, "end a SIP call whose peer sent no RTP, RTCP, re-INVITE or OPTIONS for this long (0: never)")
}

// checkSIP is checkRun's part for the SIP flags.
func (c *config) checkSIP() error {
	s := &c.SIP
	s.allow = splitList(s.Allow)
	if _, err := sip.ParseAllow(s.allow); err != nil {
		return c.bad("sip-allow", s.Allow, "want comma-separated CIDRs (10.0.0.0/8) or addresses")
	}
	if s.MaxCalls < 1 || s.MaxCalls > maxSIPCalls {
		return c.bad("sip-max-calls", strconv.Itoa(s.MaxCalls), fmt.Sprintf("want a number of calls from 1 to %d", maxSIPCalls))
	}
	lo, hi, ok := strings.Cut(s.RTPPorts, "-")
	min, err1 := strconv.Atoi(strings.TrimSpace(lo))
	max, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil || min < 1024 || max > 65535 || max-min < 1 {
		return c.bad("sip-rtp-ports", s.RTPPorts, "want a range LOW-HIGH within 1024-65535, e.g. 10000-20000")
	}
	s.rtpMin, s.rtpMax = min, max
	if s.RTPTimeout < 0 {
		return c.bad("sip-rtp-timeout", s.RTPTimeout.String(), "want a duration such as 5m, or 0 for never")
	}
	return nil
}

// newSIPServers makes a server for each sip output and adds them to the
// outputs list (status, page, /metrics).
func newSIPServers(c *config, lo *lineOutputs, events *player.EventLog, log *slog.Logger) ([]*sip.Server, error) {
	if len(lo.SIP) == 0 {
		return nil, nil
	}
	allow, err := sip.ParseAllow(c.SIP.allow)
	if err != nil {
		return nil, err
	}
	timeout := c.SIP.RTPTimeout
	if timeout == 0 {
		timeout = -1 // sip.Options: negative is never
	}
	var srvs []*sip.Server
	for _, o := range lo.SIP {
		s, err := sip.New(sip.Options{
			Addr: o.Addr, Hub: lo.Hub, Allow: allow, MaxCalls: c.SIP.MaxCalls,
			RTPMin: c.SIP.rtpMin, RTPMax: c.SIP.rtpMax, RTPTimeout: timeout, Logger: log,
			OnEvent: func(kind, msg string) { events.Add(player.Event{Kind: kind, Message: msg}) },
		})
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", o, err)
		}
		srvs = append(srvs, s)
	}
	lo.Lines.AddStatus(func() []player.OutputStatus {
		out := make([]player.OutputStatus, 0, len(srvs))
		for _, s := range srvs {
			out = append(out, sipOutputStatus(s.Status()))
		}
		return out
	})
	return srvs, nil
}

// sipOutputStatus is a SIP server as one entry of the outputs list.
func sipOutputStatus(st sip.Status) player.OutputStatus {
	o := player.OutputStatus{Kind: player.OutputSIP, Target: st.Addr, LastError: st.Error,
		SIP: &player.SIPCalls{CallsActive: st.Active, MaxCalls: st.MaxCalls, Allow: st.Allow, Totals: st.Totals,
			Calls: make([]player.OutputCall, 0, len(st.Calls))}}
	switch st.State {
	case "listening":
		o.State = player.OutputStateOK
	case "failed":
		o.State = player.OutputStateFailed
	default:
		o.State = player.OutputStateRetrying
	}
	for _, c := range st.Calls {
		o.SIP.Calls = append(o.SIP.Calls, player.OutputCall{Caller: c.Caller, Media: c.Media, Codec: c.Codec,
			Since: c.Since, PacketsSent: c.PacketsSent})
		o.PacketsSent += c.PacketsSent
	}
	return o
}
