// Package playertest is a fake player for the tests of what reads a
// player's status (the status document, /metrics, mohd check, the fleet
// exporter): a status and an audio-flowing answer the test sets, so
// what is under test is the mapping, not the player.
package playertest

import "github.com/mohproject/moh/player"

// Fixed answers with St and Flowing until the test changes them.
type Fixed struct {
	St      player.Status
	Flowing bool
}

// Status is the status the test set.
func (f *Fixed) Status() player.Status { return f.St }

// AudioFlowing is the answer the test set.
func (f *Fixed) AudioFlowing() bool { return f.Flowing }
