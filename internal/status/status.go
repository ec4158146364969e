// Package status is the one status document of a box: what
// GET /api/v1/status serves, what the fleet agent keeps retained on the
// broker and answers to a status command, and what mohctl decodes from
// either. One type built by one function, so the transports cannot drift
// apart (the MQTT status once lacked the disk and the version).
package status

import (
	"encoding/json"
	"fmt"

	"github.com/mohproject/moh/internal/programme"
	"github.com/mohproject/moh/internal/sysinfo"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/uploads"
)

// Doc is the status document. Its JSON field names are a public contract
// (webui/assets/openapi.json, schema Status): add fields, never rename.
type Doc struct {
	player.Status
	// AudioFlowing is whether audio reaches the output right now.
	AudioFlowing bool `json:"audio_flowing"`
	// Version is mohd's version.
	Version string `json:"version"`
	// UptimeS is the player's uptime in seconds (uptime_ns in seconds,
	// for people and shell scripts).
	UptimeS float64 `json:"uptime_s"`
	// Disk is the library's disk; absent while mohd runs without a
	// library.
	Disk *uploads.DiskStatus `json:"disk,omitempty"`
	// System is what predicts a failure (clock sync, certificate
	// expiry, flash writes since boot); absent from a box that does not
	// read it. The caller sets it after Build.
	System *sysinfo.System `json:"system,omitempty"`
	// Programme is what plays now and why, and the next change; absent
	// from a box without one. The caller sets it after Build.
	Programme *programme.Programme `json:"programme,omitempty"`
	// Streams is the HTTP streams' listeners (streams.go); absent from a
	// box that serves none and from the fleet link's copy. The web
	// server sets it after Build.
	Streams *Streams `json:"streams,omitempty"`
}

// Source is what Build needs of the player.
type Source interface {
	Status() player.Status
	AudioFlowing() bool
}

// Build is the only way a Doc is made. disk is nil when there is no
// library.
func Build(p Source, disk *uploads.DiskStatus, version string) Doc {
	st := p.Status()
	return Doc{
		Status:       st,
		AudioFlowing: p.AudioFlowing(),
		Version:      version,
		UptimeS:      st.Uptime.Seconds(),
		Disk:         disk,
	}
}

// HasHealth reports whether the box sent its own health verdict; a box
// older than the health model did not, and its reader must judge by the
// state instead.
func (d Doc) HasHealth() bool { return d.Health.State != "" }

// Decode reads a Doc as a box sent it, over HTTP or MQTT. A field of the
// wrong type is an error, but the fields that did decode are kept: the
// caller shows what it can of an odd box rather than nothing.
func Decode(raw []byte) (Doc, error) {
	var d Doc
	if err := json.Unmarshal(raw, &d); err != nil {
		return d, fmt.Errorf("parse status: %w", err)
	}
	return d, nil
}
