package sip

import (
	"sort"
	"time"
)

// Status is the SIP service as status, the page and metrics show it.
type Status struct {
	Addr     string       `json:"addr"`
	State    string       `json:"state"` // starting, listening, failed, stopped
	Error    string       `json:"error,omitempty"`
	Since    time.Time    `json:"since"`
	MaxCalls int          `json:"max_calls"`
	Allow    []string     `json:"allow"`
	Active   int          `json:"calls_active"`
	Calls    []CallStatus `json:"calls"`
	// Totals counts INVITEs by result (ResultNames).
	Totals map[string]uint64 `json:"totals"`
}

// CallStatus is one caller.
type CallStatus struct {
	Caller      string    `json:"caller"` // signalling source
	Media       string    `json:"media"`  // where RTP goes; empty on hold
	Codec       string    `json:"codec"`
	Since       time.Time `json:"since"`
	Confirmed   bool      `json:"confirmed"` // the caller ACKed the answer
	PacketsSent uint64    `json:"packets_sent"`
}

// Status reports the service now.
func (s *Server) Status() Status {
	s.mu.Lock()
	st := Status{Addr: s.opt.Addr, State: s.state, Error: s.lastErr, Since: s.since,
		MaxCalls: s.opt.MaxCalls, Allow: []string{}, Calls: []CallStatus{}, Totals: map[string]uint64{}}
	calls := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		calls = append(calls, c)
	}
	s.mu.Unlock()
	for _, p := range s.opt.Allow {
		st.Allow = append(st.Allow, p.String())
	}
	for _, c := range calls {
		st.Calls = append(st.Calls, c.status())
	}
	sort.Slice(st.Calls, func(i, j int) bool { return st.Calls[i].Since.Before(st.Calls[j].Since) })
	st.Active = len(st.Calls)
	for i, n := range ResultNames {
		st.Totals[n] = s.totals[i].Load()
	}
	return st
}
