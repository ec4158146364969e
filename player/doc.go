// Package player keeps the line playing: a Player loops a playlist of MP3
// files forever over one of two backends — direct (go-mp3 decoded gaplessly
// into an output sink) or MPD — and a watchdog supervises whichever runs,
// climbing a recovery ladder when audio stops flowing.
//
// The package knows nothing of HTTP, MQTT or the library's storage: callers
// hand it Tracks (a path to a house-format MP3) and read Status.
package player
