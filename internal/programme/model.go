package programme

import "time"

// DefaultPlaylist is the playlist today's single library order became:
// it exists from the first start and cannot be deleted.
const DefaultPlaylist = "default"

// Playlist is a named, ordered list of library track ids. Its JSON is a
// public contract (webui/assets/openapi.json, schema Playlist).
type Playlist struct {
	Name    string   `json:"name"`
	Tracks  []string `json:"tracks"`
	Message *Message `json:"message,omitempty"`
}

// Message is a track played between the music every EveryMinutes
// minutes of music: at the next track boundary, or at once after a short
// fade when Interrupt is set.
type Message struct {
	Track        string `json:"track"`
	EveryMinutes int    `json:"every_minutes"`
	Interrupt    bool   `json:"interrupt"`
}

// Schedule says which playlist plays when, in local time of Timezone.
type Schedule struct {
	Timezone   string      `json:"timezone"`
	Default    string      `json:"default"`
	Rules      []Rule      `json:"rules"`
	Exceptions []Exception `json:"exceptions"`
}

// Rule is a weekly window: on each of Days, from From to To local time
// ("HH:MM", To may be "24:00"). A window whose To is not after From spans
// midnight and ends on the next day.
type Rule struct {
	Name     string   `json:"name,omitempty"`
	Days     []string `json:"days"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Playlist string   `json:"playlist"`
}

// Exception is a dated window of whole local days, From to To inclusive
// (To empty: the one day From). Yearly repeats it every year by month and
// day.
type Exception struct {
	Name     string `json:"name,omitempty"`
	From     string `json:"from"`
	To       string `json:"to,omitempty"`
	Yearly   bool   `json:"yearly,omitempty"`
	Playlist string `json:"playlist"`
}

// Override plays one track or one playlist now, until Until (nil: until
// cleared).
type Override struct {
	Track    string     `json:"track,omitempty"`
	Playlist string     `json:"playlist,omitempty"`
	Until    *time.Time `json:"until,omitempty"`
	// Set is when the override was made, for the page and the events.
	Set time.Time `json:"set,omitzero"`
}

// Active reports whether the override is in force at now.
func (o *Override) Active(now time.Time) bool {
	return o != nil && (o.Until == nil || now.Before(*o.Until))
}

// Reasons a playlist plays, most specific first.
const (
	ReasonOverride  = "override"
	ReasonException = "exception"
	ReasonRule      = "rule"
	ReasonDefault   = "default"
)

// Programme is what plays now and why, and what comes next. Its JSON is
// status.programme, a public contract.
type Programme struct {
	Playlist string `json:"playlist"`
	// Track is set instead of Playlist by an override of one track.
	Track  string `json:"track,omitempty"`
	Reason string `json:"reason"`
	// Rule names the rule or exception in force ("business-hours (Mon–Fri
	// 08:00–18:00)"), or the override; empty for the default.
	Rule         string     `json:"rule,omitempty"`
	NextChange   *time.Time `json:"next_change,omitempty"`
	NextPlaylist string     `json:"next_playlist,omitempty"`
	// NextTrack is set instead of NextPlaylist when what comes next is an
	// override of one track (never, today: an override only ends).
	NextTrack string `json:"next_track,omitempty"`
}

// same reports whether two programmes play the same thing for the same
// reason (their next change aside).
func (p Programme) same(q Programme) bool {
	return p.Playlist == q.Playlist && p.Track == q.Track && p.Reason == q.Reason && p.Rule == q.Rule
}
