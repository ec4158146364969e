// Package uploads keeps moh's track library on disk and turns whatever a site
// uploads (or copies into the music folder) into an even, gapless,
// house-format rendition: MPEG-1 Layer III, 44.1 kHz stereo, LAME-tagged,
// loudness-normalised. It sniffs and refuses bad input with a precise reason,
// stores everything atomically, keeps the playlist order and guards the disk.
// It knows nothing of HTTP; webui and fleet call it.
package uploads
