// Package phonetest feeds a phone.Hub in tests the way the player's
// converter does, one frame every 20 ms, with a signal the test chooses:
// a sine for what must sound like music, a counter for a reader that
// must tell a gap.
package phonetest

import (
	"context"
	"math"
	"time"

	"github.com/mohproject/moh/internal/phone"
)

// Publish publishes a frame to hub every phone.FrameDuration until ctx
// ends; sample n of the signal, counted from the first frame, is
// sample(n). Only PCM is filled.
func Publish(ctx context.Context, hub *phone.Hub, sample func(n int) int16) {
	tk := time.NewTicker(phone.FrameDuration)
	defer tk.Stop()
	var n int
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		f := new(phone.Frame)
		for i := range f.PCM {
			f.PCM[i] = sample(n)
			n++
		}
		hub.Publish(f)
	}
}

// Sine441 is a 441 Hz sine at a quarter of full scale: music enough for
// an encoder to have something to code.
func Sine441(n int) int16 {
	return int16(8000 * math.Sin(2*math.Pi*441*float64(n)/phone.SampleRate))
}

// Counter is int16(n), so a reader can tell a gap or a repeat.
func Counter(n int) int16 { return int16(n) }
