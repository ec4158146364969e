// Package logfwd sends a box's events and warnings to a central syslog
// collector: RFC 5424 messages, framed by octet counting (RFC 5425 over
// TLS, RFC 6587 over plain TCP) or one per datagram (RFC 5426 over UDP).
// While the collector is away it keeps a bounded ring of messages in RAM
// (never on flash), counts what the ring had to drop and says so when the
// collector is back; a caller never waits for the network.
package logfwd

import (
	"strconv"
	"strings"
	"time"
)

// Severities of RFC 5424 §6.2.1 that moh uses.
const (
	SevError   = 3
	SevWarning = 4
	SevNotice  = 5
	SevInfo    = 6
	SevDebug   = 7
)

// facilityDaemon is RFC 5424's "system daemons" facility: mohd is one.
const facilityDaemon = 3

// SDID is moh's structured-data id. RFC 5424 wants name@<private
// enterprise number> for ids not registered with IANA; 32473 is the
// number RFC 5612 sets aside for documentation and examples, which a
// collector may filter on as well as on any other.
const SDID = "moh@32473"

// EventSDID carries an event's own fields (fault, rung, recovery time).
const EventSDID = "event@32473"

// Param is one SD-PARAM.
type Param struct{ Name, Value string }

// Message is one log line to forward.
type Message struct {
	Time     time.Time
	Severity int
	// MsgID is the event kind ("admin", "fault", "library"…) or "log"
	// for a slog record; it becomes RFC 5424's MSGID.
	MsgID string
	Text  string
	// Event holds an event's fields; empty for a slog record.
	Event []Param
}

// header is what every message of one box shares.
type header struct {
	hostname, app, procID string
	sd                    string // the rendered [moh@32473 …] element
}

func newHeader(hostname, app string, pid int, device, site, version string) header {
	var sd strings.Builder
	sd.WriteString("[" + SDID)
	for _, p := range []Param{{"device", device}, {"site", site}, {"version", version}} {
		if p.Value != "" {
			writeParam(&sd, p)
		}
	}
	sd.WriteByte(']')
	return header{
		hostname: field(hostname, 255),
		app:      field(app, 48),
		procID:   field(strconv.Itoa(pid), 128),
		sd:       sd.String(),
	}
}

// format renders m as an RFC 5424 SYSLOG-MSG (no framing).
func (h header) format(m Message) []byte {
	sev := m.Severity
	if sev < 0 || sev > 7 {
		sev = SevNotice
	}
	b := make([]byte, 0, 160+len(m.Text))
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(facilityDaemon*8+sev), 10)
	b = append(b, ">1 "...)
	b = m.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = append(b, h.hostname...)
	b = append(b, ' ')
	b = append(b, h.app...)
	b = append(b, ' ')
	b = append(b, h.procID...)
	b = append(b, ' ')
	b = append(b, field(m.MsgID, 32)...)
	b = append(b, ' ')
	b = append(b, h.sd...)
	if len(m.Event) > 0 {
		var sd strings.Builder
		sd.WriteString("[" + EventSDID)
		for _, p := range m.Event {
			writeParam(&sd, p)
		}
		sd.WriteByte(']')
		b = append(b, sd.String()...)
	}
	if m.Text != "" {
		b = append(b, ' ')
		// A collector reads one line per message in its files: a newline
		// inside the text would forge a second one.
		b = append(b, strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(strings.ToValidUTF8(m.Text, "?"))...)
	}
	return b
}

// writeParam appends ` name="value"`, escaping what RFC 5424 §6.3.3
// requires (", \ and ]) and making the name a valid SD-NAME.
func writeParam(sd *strings.Builder, p Param) {
	sd.WriteByte(' ')
	sd.WriteString(sdName(p.Name))
	sd.WriteString(`="`)
	sd.WriteString(sdEscaper.Replace(strings.ToValidUTF8(p.Value, "?")))
	sd.WriteByte('"')
}

var sdEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)

// field makes s a header field: printable US-ASCII without spaces, at
// most max bytes, "-" (RFC 5424's NILVALUE) when empty.
func field(s string, max int) string {
	out := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s) && len(out) < max; i++ {
		if c := s[i]; c > 32 && c < 127 {
			out = append(out, c)
		} else {
			out = append(out, '_')
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

// sdName is field for SD-NAMEs, which also exclude = ] and ".
func sdName(s string) string {
	f := []byte(field(s, 32))
	for i, c := range f {
		if c == '=' || c == ']' || c == '"' {
			f[i] = '_'
		}
	}
	return string(f)
}
