package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/sdp/v3"
)

// Codec is a G.711 flavour moh can send: the hub encodes both once, so
// picking one per call costs nothing.
type Codec struct {
	Name string // "PCMU" or "PCMA", as SDP's rtpmap spells it
	PT   uint8  // RTP payload type the offer used for it
}

// Static payload types of RFC 3551.
const (
	ptPCMU = 0
	ptPCMA = 8
)

// Media directions of RFC 3264 §5.1, from the answerer's point of view
// after mapping.
const (
	dirSendOnly = "sendonly"
	dirInactive = "inactive"
)

// errNoCodec is an offer moh cannot answer: no audio stream with PCMU or
// PCMA. It becomes 488 Not Acceptable Here.
var errNoCodec = errors.New("no common codec: moh sends PCMU or PCMA")

// offer is what moh needs from the caller's SDP.
type offer struct {
	Codec Codec
	// Dest is where RTP goes; invalid (or a zero address/port) means the
	// caller asked for no media now (hold by 0.0.0.0, port 0).
	Dest netip.AddrPort
	// Send is false when the answer must be inactive: the caller sent
	// sendonly or inactive (it holds us), or put 0.0.0.0 in c=.
	Send bool
	// MediaIndex is the audio m= line answered; the others get port 0.
	MediaIndex int
	Media      []*sdp.MediaDescription
}

// offerIn reads the offer a request carries: nil, and no error, when
// its body is empty (a delayed offer, a refresh).
func offerIn(r *sip.Request) (*offer, error) {
	if len(r.Body()) == 0 {
		return nil, nil
	}
	return parseOffer(r.Body())
}

// parseOffer reads an SDP offer and chooses the first codec moh has, in
// the offer's order (RFC 3264 §6.1: the answerer SHOULD keep the
// offerer's preference).
func parseOffer(body []byte) (*offer, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return nil, fmt.Errorf("sdp: %w", err)
	}
	sessionDir := direction(sd.Attributes)
	for i, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		if !hasProto(md.MediaName.Protos, "RTP", "AVP") {
			continue
		}
		c, ok := pickCodec(md)
		if !ok {
			continue
		}
		o := &offer{Codec: c, MediaIndex: i, Media: sd.MediaDescriptions, Send: true}
		conn := md.ConnectionInformation
		if conn == nil {
			conn = sd.ConnectionInformation
		}
		if conn == nil || conn.Address == nil {
			return nil, errors.New("sdp: no connection address")
		}
		host := conn.Address.Address
		if j := strings.IndexByte(host, '/'); j >= 0 { // multicast TTL
			host = host[:j]
		}
		addr, err := netip.ParseAddr(host)
		if err != nil {
			return nil, fmt.Errorf("sdp: connection address %q: %w", host, err)
		}
		o.Dest = netip.AddrPortFrom(addr.Unmap(), uint16(md.MediaName.Port.Value))
		dir := direction(md.Attributes)
		if dir == "" {
			dir = sessionDir
		}
		// RFC 3264 §6.1: we only send; an offer that will not receive
		// (sendonly, inactive) or points at 0.0.0.0 (RFC 2543 hold) is
		// answered inactive.
		if dir == "sendonly" || dir == "inactive" || addr.IsUnspecified() {
			o.Send = false
		}
		return o, nil
	}
	return nil, errNoCodec
}

func hasProto(protos []string, want ...string) bool {
	if len(protos) != len(want) {
		return false
	}
	for i := range want {
		if !strings.EqualFold(protos[i], want[i]) {
			return false
		}
	}
	return true
}

func direction(attrs []sdp.Attribute) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return ""
}

// pickCodec returns the first of the offer's formats that is PCMU or
// PCMA, by static payload type or by rtpmap name.
func pickCodec(md *sdp.MediaDescription) (Codec, bool) {
	names := map[string]string{}
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, enc, ok := strings.Cut(a.Value, " ")
		if ok {
			names[pt] = strings.ToUpper(enc)
		}
	}
	for _, f := range md.MediaName.Formats {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 127 {
			continue
		}
		enc, mapped := names[f]
		switch {
		case mapped && (enc == "PCMU/8000" || enc == "PCMU/8000/1"):
			return Codec{Name: "PCMU", PT: uint8(n)}, true
		case mapped && (enc == "PCMA/8000" || enc == "PCMA/8000/1"):
			return Codec{Name: "PCMA", PT: uint8(n)}, true
		case !mapped && n == ptPCMU:
			return Codec{Name: "PCMU", PT: ptPCMU}, true
		case !mapped && n == ptPCMA:
			return Codec{Name: "PCMA", PT: ptPCMA}, true
		}
	}
	return Codec{}, false
}

// answer builds moh's SDP answer: the chosen codec at 20 ms, sendonly
// (or inactive), every other m= line of the offer rejected with port 0 as
// RFC 3264 §6 requires an answer to keep the offer's m= lines.
func answer(o *offer, local netip.Addr, port int, sessID, version uint64) ([]byte, error) {
	ipv := "IP4"
	if local.Is6() && !local.Is4In6() {
		ipv = "IP6"
	}
	sd := &sdp.SessionDescription{
		Origin: sdp.Origin{
			Username:       "moh",
			SessionID:      sessID,
			SessionVersion: version,
			NetworkType:    "IN",
			AddressType:    ipv,
			UnicastAddress: local.String(),
		},
		SessionName: "moh",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN", AddressType: ipv, Address: &sdp.Address{Address: local.String()},
		},
		TimeDescriptions: []sdp.TimeDescription{{}},
	}
	dir := dirSendOnly
	if !o.Send {
		dir = dirInactive
	}
	media := o.Media
	if len(media) == 0 { // moh's own offer: one audio line
		media = []*sdp.MediaDescription{{MediaName: sdp.MediaName{Media: "audio"}}}
	}
	for i, om := range media {
		if i != o.MediaIndex {
			sd.MediaDescriptions = append(sd.MediaDescriptions, &sdp.MediaDescription{
				MediaName: sdp.MediaName{Media: om.MediaName.Media, Port: sdp.RangedPort{Value: 0},
					Protos: om.MediaName.Protos, Formats: om.MediaName.Formats},
			})
			continue
		}
		pt := strconv.Itoa(int(o.Codec.PT))
		sd.MediaDescriptions = append(sd.MediaDescriptions, &sdp.MediaDescription{
			MediaName: sdp.MediaName{Media: "audio", Port: sdp.RangedPort{Value: port},
				Protos: []string{"RTP", "AVP"}, Formats: []string{pt}},
			Attributes: []sdp.Attribute{
				sdp.NewAttribute("rtpmap", pt+" "+o.Codec.Name+"/8000"),
				sdp.NewAttribute("ptime", "20"),
				sdp.NewPropertyAttribute(dir),
			},
		})
	}
	return sd.Marshal()
}
