// Package programme decides what plays when: named playlists, a weekly
// schedule with dated exceptions in the box's time zone, a periodic
// message per playlist and an emergency override. The model and its
// validation, the evaluator (a pure function of the schedule, the
// override and the instant), the state files in the data dir and the
// engine that hands the player its next track sequence live here.
package programme
