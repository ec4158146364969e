package player

// FaultClasses lists every fault class the watchdog or a backend can
// report, so monitoring can show each one's counter at 0 from the start:
// an alert on increase() then fires on the very first fault.
var FaultClasses = []string{
	FaultNotPlaying, FaultStalled, FaultSilent, FaultBackend,
	"no-track", "sink-failed", "sink-exited", "device-missing",
	"mpd-error", "mpd-disconnected", "mpd-exited", "mpd-timeout",
	"mpd-stopped", "mpd-paused", "mpd-volume", "mpd-output", "mpd-options", "mpd-queue",
}

// Rungs lists the recovery ladder, lowest first.
var Rungs = []Rung{RungReplay, RungClearError, RungReconnect, RungRestartBackend, RungExit, RungReboot}
