package main

import (
	"strings"

	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/uploads"
)

// diskFreeReader feeds the disk trend from the library's disk reading; a
// reading that failed (TotalBytes 0) is left out rather than read as a
// full disk.
func diskFreeReader(lib *uploads.Library) func() (uint64, bool) {
	return func() (uint64, bool) {
		d := lib.Disk()
		return d.FreeBytes, d.TotalBytes > 0
	}
}

// underrunReader reports the ALSA underrun count when an output is a
// sound card (alsa or alsa:DEVICE in the --output list), nil otherwise,
// so a box without one shows no count rather than a reassuring zero.
func underrunReader(outputs string) func() uint64 {
	for _, o := range strings.Split(outputs, ",") {
		if o = strings.TrimSpace(o); o == player.OutputALSA || strings.HasPrefix(o, player.OutputALSA+":") {
			return player.ALSAUnderruns
		}
	}
	return nil
}
