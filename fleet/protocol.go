package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mohproject/moh/internal/programme"
	"github.com/mohproject/moh/internal/status"
)

// Operations a Command may ask for; they mirror the HTTP API.
const (
	OpStatus      = "status"
	OpTracks      = "tracks"
	OpPlay        = "play"
	OpStop        = "stop"
	OpNext        = "next"
	OpVolume      = "volume"
	OpAddTrack    = "add_track"
	OpRemoveTrack = "remove_track"
	OpReorder     = "reorder"
	// OpCertCSR and OpCertInstall rotate a certificate (certrotate.go).
	OpCertCSR     = "cert_csr"
	OpCertInstall = "cert_install"
	// OpUpdate installs a system bundle (update.go).
	OpUpdate = "update"
)

// Error codes a Reply may carry, besides those of a failed operation.
const (
	CodeBadRequest = "bad_request"
	CodeExpired    = "expired"
	CodeBusy       = "busy"
	CodeChecksum   = "checksum_mismatch"
	CodeDownload   = "download_failed"
	CodeFailed     = "failed"
	CodeTooLarge   = "too_large"
)

// MaxCommandBytes bounds a command's payload; a box refuses a bigger one
// before decoding it. Commands are small: add_track carries a URL and a
// hash, not the track, and the longest legitimate one, a reorder of the
// whole playlist, takes about 20 bytes per track id (13,000 tracks fit).
const MaxCommandBytes = 256 << 10

// BrokerMessageLimit is the message_size_limit the documented broker
// config sets (fleet/README.md): the broker drops any bigger message, so
// a box never even receives it. It sits above MaxCommandBytes to leave
// room for replies (a tracks listing takes about 600 bytes per track)
// and a box refuses to publish a reply bigger than it, which the broker
// would drop unseen.
const BrokerMessageLimit = 1 << 20

// BrokerPacketLimit is the documented broker's max_packet_size: a client
// sending a bigger packet is disconnected before the broker buffers it,
// so a flood of huge publishes cannot exhaust the broker's memory.
const BrokerPacketLimit = 2 << 20

// Command is one request published on a command topic. ID makes it
// idempotent (a box answers a repeated ID with its first answer and does
// not act twice); Expires makes a box that comes back online refuse it
// instead of replaying stale orders, and is checked again when a worker
// takes the command, so one that waited too long in the queue is refused
// too. The JSON payload may be at most MaxCommandBytes.
type Command struct {
	ID      string    `json:"id"`
	Op      string    `json:"op"`
	Expires time.Time `json:"expires"`
	// Volume for OpVolume (0..100).
	Volume *int `json:"volume,omitempty"`
	// URL (https only), SHA256 (hex) and Name for OpAddTrack.
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Name   string `json:"name,omitempty"`
	// TrackID for OpRemoveTrack.
	TrackID string `json:"track_id,omitempty"`
	// Order (track ids) for OpReorder.
	Order []string `json:"order,omitempty"`
	// Kind (fleet or https) for OpCertCSR and OpCertInstall; Cert (PEM,
	// the certificate and any intermediates) for OpCertInstall.
	Kind string `json:"kind,omitempty"`
	Cert string `json:"cert,omitempty"`
	// URL and SHA256 of the bundle, and Reboot ("now" or local
	// "HH:MM"), for OpUpdate.
	Reboot string `json:"reboot,omitempty"`
	// Schedule for OpSchedule, Override for OpOverride (programme.go).
	Schedule *programme.Schedule `json:"schedule,omitempty"`
	Override *programme.Override `json:"override,omitempty"`
}

// ReplyError is the error part of a Reply, shaped like the HTTP API's.
type ReplyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *ReplyError) Error() string { return e.Code + ": " + e.Message }

// Reply is a box's answer to one Command.
type Reply struct {
	ID     string          `json:"id"`
	Device string          `json:"device"`
	OK     bool            `json:"ok"`
	Error  *ReplyError     `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Presence values of a StatusDoc.
const (
	Online  = "online"
	Offline = "offline"
)

// StatusDoc is the retained document on moh/<id>/status: an envelope
// saying whether the box is online, around its status document (a
// status.Doc, the one GET /api/v1/status serves). The last will is the
// same envelope with Presence "offline", no Status, and as Time the start
// of the connection it belongs to (the broker sends it verbatim, so it
// cannot carry the moment the box vanished). Status stays raw so
// a reader shows every field a newer box sends; Doc decodes it.
type StatusDoc struct {
	Device   string          `json:"device"`
	Presence string          `json:"presence"`
	Groups   []string        `json:"groups,omitempty"`
	Time     time.Time       `json:"time,omitzero"`
	Status   json.RawMessage `json:"status,omitempty"`
}

// Doc decodes the box's status document; see status.Decode for what an
// odd document yields.
func (d StatusDoc) Doc() (status.Doc, error) {
	if len(d.Status) == 0 {
		return status.Doc{}, errors.New("no status document")
	}
	return status.Decode(d.Status)
}

// StatusTopic is where a box keeps its retained status.
func StatusTopic(device string) string { return "moh/" + device + "/status" }

// CommandTopic is where commands for one box are published.
func CommandTopic(device string) string { return "moh/" + device + "/cmd" }

// GroupTopic is where commands for a whole group are published.
func GroupTopic(group string) string { return "moh/group/" + group + "/cmd" }

// ReplyTopic is where a box answers request id.
func ReplyTopic(device, id string) string { return "moh/" + device + "/reply/" + id }

// ValidName reports whether s may be used as a device id, group or
// request id: one non-empty topic level with no wildcards, and not the
// word "group" (which would collide with the group topics).
func ValidName(s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("name %q: must be 1..128 bytes", s)
	}
	if strings.ContainsAny(s, "/+#\x00 ") {
		return fmt.Errorf("name %q: must not contain '/', '+', '#', spaces or NUL", s)
	}
	if s == "group" {
		return fmt.Errorf("name %q is reserved", s)
	}
	return nil
}
