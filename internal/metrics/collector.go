package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mohproject/moh/internal/sysinfo"
	"github.com/mohproject/moh/player"
)

var (
	descInfo        = prometheus.NewDesc("moh_build_info", "moh version (value is 1).", []string{"version"}, nil)
	descPlaying     = prometheus.NewDesc("moh_playing", "1 while the backend state is playing.", nil, nil)
	descFlowing     = prometheus.NewDesc("moh_audio_flowing", "1 while audio reaches the output (what /healthz reports).", nil, nil)
	descWanted      = prometheus.NewDesc("moh_playing_wanted", "1 when the admin wants playback.", nil, nil)
	descState       = prometheus.NewDesc("moh_player_state", "Backend state (1 for the current one).", []string{"state", "backend"}, nil)
	descLevel       = prometheus.NewDesc("moh_output_level_dbfs", "RMS level of the last ~100 ms sent to the output, dBFS (-120 is digital silence).", nil, nil)
	descVolume      = prometheus.NewDesc("moh_volume", "Volume setting, 0..100.", nil, nil)
	descFallback    = prometheus.NewDesc("moh_fallback_playing", "1 when the built-in track plays because the playlist is empty.", nil, nil)
	descPlaylist    = prometheus.NewDesc("moh_playlist_tracks", "Tracks in the playlist.", nil, nil)
	descTracks      = prometheus.NewDesc("moh_library_tracks", "Tracks in the library.", nil, nil)
	descUptime      = prometheus.NewDesc("moh_uptime_seconds", "Time since playback started.", nil, nil)
	descFrames      = prometheus.NewDesc("moh_output_frames_total", "PCM frames delivered to the output since the backend started.", nil, nil)
	descFaults      = prometheus.NewDesc("moh_watchdog_faults_total", "Faults detected by the watchdog, by fault class.", []string{"fault"}, nil)
	descRecoveries  = prometheus.NewDesc("moh_watchdog_recoveries_total", "Recoveries, by the ladder rung that brought audio back.", []string{"rung"}, nil)
	descAttempts    = prometheus.NewDesc("moh_watchdog_attempts_total", "Recovery attempts, by ladder rung.", []string{"rung"}, nil)
	descWDHealthy   = prometheus.NewDesc("moh_watchdog_healthy", "1 when the watchdog sees no fault.", nil, nil)
	descLastFault   = prometheus.NewDesc("moh_watchdog_last_fault_timestamp_seconds", "Unix time of the last fault (absent if none since start).", []string{"fault"}, nil)
	descLastRecover = prometheus.NewDesc("moh_watchdog_last_recovery_seconds", "How long the last recovery took, from detection to audio.", nil, nil)
	descDiskFree    = prometheus.NewDesc("moh_disk_free_bytes", "Free bytes on the library's file system.", nil, nil)
	descDiskTotal   = prometheus.NewDesc("moh_disk_total_bytes", "Size of the library's file system.", nil, nil)
	descDiskError   = prometheus.NewDesc("moh_disk_error", "1 when free space could not be read.", nil, nil)
	descMQTT        = prometheus.NewDesc("moh_mqtt_connected", "1 while the fleet agent is connected to its broker.", nil, nil)
	descHealth      = prometheus.NewDesc("moh_health_state", "The line's health: 0 ok (audio flows), 1 warning (silent on purpose, or degraded), 2 critical (silent by fault); what /healthz and mohd check say.", nil, nil)
	descSilent      = prometheus.NewDesc("moh_callers_hear_silence", "1 while callers hear silence (admin stop, volume 0, or a fault).", nil, nil)
	descClock       = prometheus.NewDesc("moh_clock_synced", "1 while the kernel says the clock is synchronised (NTP), 0 when not.", nil, nil)
	descCertExpiry  = prometheus.NewDesc("moh_cert_expiry_timestamp_seconds", "Unix time a certificate of the box expires, by role (fleet, https).", []string{"cert"}, nil)
	descWritten     = prometheus.NewDesc("moh_data_written_bytes_total", "Bytes written to the data partition's block device since boot (flash wear).", nil, nil)
	descDiskTrend   = prometheus.NewDesc("moh_disk_free_trend_bytes_per_hour", "How fast the library's free space changed over the last hour, in bytes per hour (negative: filling up); absent until 10 min of readings.", nil, nil)
	descUnderruns   = prometheus.NewDesc("moh_alsa_underruns_total", "Underruns the sound card reported (aplay's \"underrun!!!\") since mohd started; absent without an ALSA output.", nil, nil)
)

// collector reads the player and friends at scrape time.
type collector struct{ o Options }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var allStates = []player.State{player.StateStarting, player.StatePlaying, player.StateStopped, player.StateRecovering, player.StateFailed}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge(ch, descInfo, 1, c.o.Version)
	if p := c.o.Player; p != nil {
		st := p.Status()
		gauge(ch, descHealth, float64(st.Health.State.Code()))
		gauge(ch, descSilent, b2f(st.Health.Silent))
		gauge(ch, descPlaying, b2f(st.State == player.StatePlaying))
		gauge(ch, descFlowing, b2f(p.AudioFlowing()))
		gauge(ch, descWanted, b2f(st.Wanted == player.StatePlaying))
		for _, s := range allStates {
			gauge(ch, descState, b2f(st.State == s), string(s), st.Backend)
		}
		gauge(ch, descLevel, st.LevelDBFS)
		gauge(ch, descVolume, float64(st.Volume))
		gauge(ch, descFallback, b2f(st.Fallback))
		gauge(ch, descPlaylist, float64(st.PlaylistLength))
		gauge(ch, descUptime, st.Uptime.Seconds())
		counter(ch, descFrames, float64(st.Frames))
		w := st.Watchdog
		gauge(ch, descWDHealthy, b2f(w.Fault == ""))
		// Every class and rung is there from the start, at 0, so that an
		// alert on increase() fires on the first fault.
		for k, v := range withZeros(w.FaultsByClass, player.FaultClasses) {
			counter(ch, descFaults, float64(v), k)
		}
		for k, v := range withZeros(w.RecoveriesByRung, rungNames) {
			counter(ch, descRecoveries, float64(v), k)
		}
		for k, v := range withZeros(w.AttemptsByRung, rungNames) {
			counter(ch, descAttempts, float64(v), k)
		}
		if lf := w.LastFault; lf != nil && !lf.Time.IsZero() {
			gauge(ch, descLastFault, float64(lf.Time.UnixNano())/1e9, string(lf.Fault))
		}
		if w.LastRecoveryMS > 0 {
			gauge(ch, descLastRecover, float64(w.LastRecoveryMS)/1000)
		}
	}
	if c.o.Tracks != nil {
		gauge(ch, descTracks, float64(c.o.Tracks()))
	}
	if c.o.Disk != nil {
		d, err := c.o.Disk()
		gauge(ch, descDiskError, b2f(err != nil))
		if err == nil {
			gauge(ch, descDiskFree, float64(d.Free))
			gauge(ch, descDiskTotal, float64(d.Total))
		}
	}
	if c.o.MQTTConnected != nil {
		gauge(ch, descMQTT, b2f(c.o.MQTTConnected()))
	}
	if c.o.System != nil {
		s := c.o.System()
		if s == nil {
			s = &sysinfo.System{}
		}
		if s.ClockSynced != nil {
			gauge(ch, descClock, b2f(*s.ClockSynced))
		}
		for _, cert := range s.Certs {
			if !cert.NotAfter.IsZero() {
				gauge(ch, descCertExpiry, float64(cert.NotAfter.Unix()), cert.Name)
			}
		}
		if s.DataWrittenBytes != nil {
			counter(ch, descWritten, float64(*s.DataWrittenBytes))
		}
		if s.DiskFreeTrend != nil {
			gauge(ch, descDiskTrend, *s.DiskFreeTrend)
		}
		if s.ALSAUnderruns != nil {
			counter(ch, descUnderruns, float64(*s.ALSAUnderruns))
		}
	}
}

var rungNames = func() []string {
	var out []string
	for _, r := range player.Rungs {
		out = append(out, r.String())
	}
	return out
}()

// withZeros returns counts with every one of names present.
func withZeros[N ~string](counts map[string]uint64, names []N) map[string]uint64 {
	out := make(map[string]uint64, len(counts)+len(names))
	for _, n := range names {
		out[string(n)] = 0
	}
	for k, v := range counts {
		out[k] = v
	}
	return out
}
