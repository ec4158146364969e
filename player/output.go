package player

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// Output names where the direct backend's PCM goes: one item of the
// --output flag.
type Output struct {
	Kind   string // "alsa", "file", "null", "rtp" or "sip"
	Device string // ALSA device for Kind "alsa"; "" is ALSA's default
	Path   string // file or FIFO for Kind "file"
	// Addr is "HOST:PORT": the RTP destination (a multicast group or a
	// unicast address) for Kind "rtp", the SIP listen address for Kind
	// "sip".
	Addr string
	// RTP options (Kind "rtp" only; ParseOutput fills in the defaults).
	Codec   string // "pcmu" (payload type 0) or "pcma" (8)
	PtimeMS int    // packet time; the telephone signal is framed in 20 ms
	TTL     int    // IP_MULTICAST_TTL, or IP_TTL for a unicast target
	DSCP    int    // DiffServ code point in IP_TOS; 46 is EF
	Iface   string // network interface multicast leaves by; "" lets the routing table choose
}

// Output kinds.
const (
	OutputALSA = "alsa"
	OutputFile = "file"
	OutputNull = "null"
	OutputRTP  = "rtp"
	OutputSIP  = "sip"
)

// RTP output defaults, what Cisco CUCM's multicast MOH and the like
// expect: G.711 µ-law in 20 ms packets, DSCP EF, a TTL that crosses a few
// routers of a campus but not the world.
const (
	DefaultRTPCodec = "pcmu"
	DefaultRTPPtime = 20
	DefaultRTPTTL   = 16
	DefaultRTPDSCP  = 46
	// DefaultSIPAddr is where the SIP MOH server listens when "sip" names
	// no address.
	DefaultSIPAddr = "0.0.0.0:5060"
)

const outputForms = `"alsa", "alsa:DEVICE", "file:PATH" or "null"`

// ParseOutput parses an --output spec: "alsa", "alsa:DEVICE" (e.g.
// "alsa:hw:1,0", "alsa:plughw:CARD=Device"), "file:PATH" or "null".
func ParseOutput(spec string) (Output, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return Output{}, fmt.Errorf("output: empty spec; want %s", outputForms)
	}
	kind, arg, hasArg := strings.Cut(s, ":")
	switch kind {
	case OutputNull:
		if hasArg {
			return Output{}, fmt.Errorf("output %q: null takes no argument", spec)
		}
		return Output{Kind: OutputNull}, nil
	case OutputALSA:
		if !hasArg {
			return Output{Kind: OutputALSA}, nil
		}
		if arg == "" {
			return Output{}, fmt.Errorf(`output %q: empty ALSA device after "alsa:"; use "alsa" for the default device`, spec)
		}
		if err := checkALSADevice(arg); err != nil {
			return Output{}, fmt.Errorf("output %q: %w", spec, err)
		}
		return Output{Kind: OutputALSA, Device: arg}, nil
	case OutputFile:
		if arg == "" {
			return Output{}, fmt.Errorf(`output %q: "file:" needs a path, e.g. file:/run/moh/pcm.fifo`, spec)
		}
		if strings.ContainsRune(arg, 0) {
			return Output{}, fmt.Errorf("output %q: path contains a NUL byte", spec)
		}
		return Output{Kind: OutputFile, Path: arg}, nil
	case OutputRTP:
		o, err := parseRTP(arg)
		if err != nil {
			return Output{}, fmt.Errorf("output %q: %w", spec, err)
		}
		return o, nil
	case OutputSIP:
		o, err := parseSIP(arg, hasArg)
		if err != nil {
			return Output{}, fmt.Errorf("output %q: %w", spec, err)
		}
		return o, nil
	}
	return Output{}, fmt.Errorf("output %q: unknown kind %q; want %s; network outputs: %s", spec, kind, outputForms, networkForms)
}

const networkForms = `"rtp:GROUP:PORT[?codec=pcmu|pcma&ptime=20&ttl=N&dscp=N&iface=NAME]" or "sip[:ADDR:PORT]"`

// parseRTP parses what follows "rtp:": HOST:PORT and an optional query.
func parseRTP(arg string) (Output, error) {
	hostPort, query, _ := strings.Cut(arg, "?")
	if hostPort == "" {
		return Output{}, fmt.Errorf(`"rtp:" needs GROUP:PORT, e.g. rtp:239.1.1.1:16384`)
	}
	addr, err := parseHostPort(hostPort, false)
	if err != nil {
		return Output{}, err
	}
	o := Output{Kind: OutputRTP, Addr: addr, Codec: DefaultRTPCodec, PtimeMS: DefaultRTPPtime, TTL: DefaultRTPTTL, DSCP: DefaultRTPDSCP}
	q, err := url.ParseQuery(query)
	if err != nil {
		return Output{}, fmt.Errorf("options %q: %w", query, err)
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return Output{}, fmt.Errorf("option %q given %d times", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "codec":
			if v != "pcmu" && v != "pcma" {
				return Output{}, fmt.Errorf(`codec %q: want "pcmu" (G.711 µ-law) or "pcma" (G.711 A-law)`, v)
			}
			o.Codec = v
		case "ptime":
			// Every network output shares one 20 ms framing (encode
			// once); other packet times would need re-framing per output.
			if v != "20" {
				return Output{}, fmt.Errorf("ptime %q: only 20 (ms) is supported", v)
			}
		case "ttl":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 255 {
				return Output{}, fmt.Errorf("ttl %q: want 1..255", v)
			}
			o.TTL = n
		case "dscp":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 63 {
				return Output{}, fmt.Errorf("dscp %q: want 0..63 (46 is EF)", v)
			}
			o.DSCP = n
		case "iface":
			if v == "" || len(v) > 15 || strings.ContainsAny(v, "/ \t\n\x00") {
				return Output{}, fmt.Errorf("iface %q: not a network interface name", v)
			}
			o.Iface = v
		default:
			return Output{}, fmt.Errorf("unknown option %q; want codec, ptime, ttl, dscp or iface", k)
		}
	}
	return o, nil
}

// parseSIP parses what follows "sip": nothing (the default address) or
// ":ADDR:PORT"; an empty ADDR listens on every address.
func parseSIP(arg string, hasArg bool) (Output, error) {
	if !hasArg {
		return Output{Kind: OutputSIP, Addr: DefaultSIPAddr}, nil
	}
	if arg == "" {
		return Output{}, fmt.Errorf(`empty address after "sip:"; use "sip" for %s`, DefaultSIPAddr)
	}
	addr, err := parseHostPort(arg, true)
	if err != nil {
		return Output{}, err
	}
	return Output{Kind: OutputSIP, Addr: addr}, nil
}

// parseHostPort checks "IP:PORT" ("[IPv6]:PORT" for IPv6) and returns it
// in canonical form. Names are refused: an appliance that resolves its
// media address at start plays to the wrong place after a DNS change.
func parseHostPort(s string, emptyHost bool) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("address %q: want IP:PORT ([IPv6]:PORT for IPv6)", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("address %q: port %q: want 1..65535", s, port)
	}
	if host == "" && emptyHost {
		host = "0.0.0.0"
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "", fmt.Errorf("address %q: %q is not an IP address", s, host)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(p)), nil
}

// Paced reports whether o is an output that plays at a sound card's pace
// (alsa, file, null): the one the direct backend's clock follows.
func (o Output) Paced() bool {
	return o.Kind == OutputALSA || o.Kind == OutputFile || o.Kind == OutputNull
}

// Network reports whether o takes the telephone signal (rtp, sip).
func (o Output) Network() bool { return o.Kind == OutputRTP || o.Kind == OutputSIP }

// ParseOutputs parses a comma-separated --output list, e.g.
// "alsa:hw:1,0,rtp:239.1.1.1:16384,sip". Within an ALSA device or a file
// path a comma starts a new output only where a known kind follows it, so
// device names keep their commas ("hw:1,0"). An output may be listed once, and at most one of alsa, file
// and null: that one sets the pace of playback (with only network outputs
// a paced null sink does).
func ParseOutputs(spec string) ([]Output, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("output: empty spec; want %s", outputForms)
	}
	var items []string
	for _, piece := range strings.Split(spec, ",") {
		if len(items) > 0 && !startsWithKind(piece) && takesCommas(items[len(items)-1]) {
			items[len(items)-1] += "," + piece
			continue
		}
		items = append(items, piece)
	}
	var out []Output
	seen := map[string]bool{}
	var paced string
	for _, it := range items {
		o, err := ParseOutput(it)
		if err != nil {
			return nil, err
		}
		key := o.Kind + " " + o.Target()
		if seen[key] {
			return nil, fmt.Errorf("output %q is listed twice", o.String())
		}
		seen[key] = true
		if o.Paced() {
			if paced != "" {
				return nil, fmt.Errorf("output %q and %q: only one of alsa, file and null may be listed (it sets the pace of playback)", paced, o.String())
			}
			paced = o.String()
		}
		out = append(out, o)
	}
	return out, nil
}

// startsWithKind reports whether an item of a comma-separated list begins
// a new output.
func startsWithKind(s string) bool {
	kind, _, _ := strings.Cut(strings.TrimSpace(s), ":")
	switch kind {
	case OutputALSA, OutputFile, OutputNull, OutputRTP, OutputSIP:
		return true
	}
	return false
}

// takesCommas reports whether the item's argument may contain a comma:
// an ALSA device ("hw:1,0") or a file path.
func takesCommas(item string) bool {
	kind, _, hasArg := strings.Cut(strings.TrimSpace(item), ":")
	return hasArg && (kind == OutputALSA || kind == OutputFile)
}

// Target is what the output plays to, for status and metrics: the ALSA
// device ("default"), the file, the network address, "" for null.
func (o Output) Target() string {
	switch o.Kind {
	case OutputALSA:
		if o.Device == "" {
			return "default"
		}
		return o.Device
	case OutputFile:
		return o.Path
	case OutputRTP, OutputSIP:
		return o.Addr
	}
	return ""
}

// checkALSADevice rejects device names aplay would misread; the name goes
// to aplay as a separate argument, never through a shell.
func checkALSADevice(dev string) error {
	if strings.HasPrefix(dev, "-") {
		return fmt.Errorf("ALSA device %q must not start with '-'", dev)
	}
	for _, r := range dev {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("ALSA device %q contains a space or control character", dev)
		}
	}
	return nil
}

// String returns the spec ParseOutput accepts for o.
func (o Output) String() string {
	switch o.Kind {
	case OutputALSA:
		if o.Device == "" {
			return OutputALSA
		}
		return OutputALSA + ":" + o.Device
	case OutputFile:
		return OutputFile + ":" + o.Path
	case OutputRTP:
		s := OutputRTP + ":" + o.Addr + "?codec=" + o.Codec + "&ptime=" + strconv.Itoa(o.PtimeMS) +
			"&ttl=" + strconv.Itoa(o.TTL) + "&dscp=" + strconv.Itoa(o.DSCP)
		if o.Iface != "" {
			s += "&iface=" + url.QueryEscape(o.Iface)
		}
		return s
	case OutputSIP:
		return OutputSIP + ":" + o.Addr
	}
	return o.Kind
}

// OpenSink opens the sink o names. ctx bounds the opening only (waiting
// for a FIFO reader, checking that aplay started); Close ends the sink.
func OpenSink(ctx context.Context, o Output, log *slog.Logger) (Sink, error) {
	if log == nil {
		log = slog.Default()
	}
	switch o.Kind {
	case OutputNull:
		return NewNullSink(nil), nil
	case OutputFile:
		return OpenFileSink(ctx, o.Path, FileSinkOptions{Logger: log})
	case OutputALSA:
		return OpenALSASink(ctx, o.Device, ALSASinkOptions{Logger: log})
	case OutputRTP, OutputSIP:
		return nil, fmt.Errorf("open sink: %s output takes the telephone signal, not line PCM", o.Kind)
	}
	return nil, fmt.Errorf("open sink: unknown output kind %q; want %s", o.Kind, outputForms)
}
