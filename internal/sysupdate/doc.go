// Package sysupdate is the box side of signed A/B system updates: it
// takes a RAUC bundle (uploaded or fetched), checks its sha256, signature
// and compatible string before anything is written, has RAUC install it
// into the inactive slot, reboots at the requested time, and after the
// boot decides by mohd's own health whether the new slot is kept
// (mark-good) or abandoned (mark-bad and reboot back). Every step is a
// phase in DATA/update/state.json, written atomically on each change, so
// a power cut at any moment resumes at the right place.
package sysupdate
