package exporter

import (
	"bufio"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/player"
)

// family is one metric name with its help and type.
type family struct {
	name, typ, help string
}

// The per-box families rendered from the status document, in output
// order. They are present only while the box is up: a dead box's last
// words would otherwise keep a silence alert firing, or hide one, for as
// long as it stays dead; moh_fleet_up says it is gone.
const (
	fHealth = iota
	fSilent
	fPlaying
	fWanted
	fFlowing
	fFallback
	fVolume
	fPlaylist
	fUptime
	fWDHealthy
	fFaults
	fRecoveries
	fLastFault
	fDiskFree
	fDiskTotal
	fDiskWarning
	fClock
	fCert
	fWritten
	fDiskTrend
	fUnderruns
	nStatus
)

var statusFamilies = [nStatus]family{
	fHealth:     {"moh_fleet_health_state", "gauge", "The line's health as the box judges it: 0 ok, 1 warning (silent on purpose, or degraded), 2 critical (silent by fault)."},
	fSilent:     {"moh_fleet_callers_hear_silence", "gauge", "1 while callers hear silence (admin stop, volume 0, or a fault)."},
	fPlaying:    {"moh_fleet_playing", "gauge", "1 while the box's backend is playing."},
	fWanted:     {"moh_fleet_playing_wanted", "gauge", "1 when the box's admin wants playback; 0 is an admin stop."},
	fFlowing:    {"moh_fleet_audio_flowing", "gauge", "1 while audio reaches the box's output."},
	fFallback:   {"moh_fleet_fallback_playing", "gauge", "1 when the built-in track plays because the playlist is empty or every track was refused."},
	fVolume:     {"moh_fleet_volume", "gauge", "Volume setting, 0..100."},
	fPlaylist:   {"moh_fleet_playlist_tracks", "gauge", "Tracks in the box's playlist."},
	fUptime:     {"moh_fleet_uptime_seconds", "gauge", "Time since the box's playback started."},
	fWDHealthy:  {"moh_fleet_watchdog_healthy", "gauge", "1 when the box's watchdog sees no fault."},
	fFaults:     {"moh_fleet_watchdog_faults_total", "counter", "Faults the box's watchdog detected since mohd started."},
	fRecoveries: {"moh_fleet_watchdog_recoveries_total", "counter", "Recoveries the box's watchdog made since mohd started."},
	fLastFault:  {"moh_fleet_watchdog_last_fault_timestamp_seconds", "gauge", "Unix time of the box's last fault, labelled with its class (absent if none since start)."},
	fDiskFree:   {"moh_fleet_disk_free_bytes", "gauge", "Free bytes on the box's library file system."},
	fDiskTotal:  {"moh_fleet_disk_total_bytes", "gauge", "Size of the box's library file system."},
	fDiskWarning: {"moh_fleet_disk_warning", "gauge",
		"1 while free space is below twice the box's upload refusal margin (or cannot be read)."},
	fClock:   {"moh_fleet_clock_synced", "gauge", "1 while the box's clock is synchronised (NTP), 0 when not; absent from boxes that do not report it."},
	fCert:    {"moh_fleet_cert_expiry_timestamp_seconds", "gauge", "Unix time a certificate of the box expires, by certificate (fleet, https)."},
	fWritten: {"moh_fleet_data_written_bytes_total", "counter", "Bytes written to the box's data partition since boot (flash wear)."},
	fDiskTrend: {"moh_fleet_disk_free_trend_bytes_per_hour", "gauge",
		"How fast the box's free library space changed over the last hour, in bytes per hour (negative: filling up)."},
	fUnderruns: {"moh_fleet_alsa_underruns_total", "counter", "Underruns the box's sound card reported since mohd started (absent without an ALSA output)."},
}

// Families present for every known box, up or not.
var (
	famUp       = family{"moh_fleet_up", "gauge", "1 while the box is online on the broker and heard within the staleness window, 0 otherwise."}
	famLastSeen = family{"moh_fleet_last_seen_timestamp_seconds", "gauge", "Unix time the box was last heard (its last status, or the start of its last connection for a last will)."}
	famGroup    = family{"moh_fleet_box_group", "gauge", "1 for each group the box belongs to (join on device)."}
)

// The exporter's own health.
var (
	famConnected = family{"moh_fleet_exporter_broker_connected", "gauge", "1 while the exporter is connected and subscribed to the broker."}
	famBoxes     = family{"moh_fleet_exporter_boxes", "gauge", "Boxes the exporter knows (every box that ever published a status, until its retained status is cleared)."}
	famMessages  = family{"moh_fleet_exporter_messages_total", "counter", "Status and event messages received from the broker."}
	famBad       = family{"moh_fleet_exporter_bad_messages_total", "counter", "Status and event messages that could not be decoded, wholly or in part."}
	famScrape    = family{"moh_fleet_exporter_scrape_duration_seconds", "gauge", "How long rendering the previous scrape took."}
)

// MetricNames lists every metric name the exporter can serve, for the
// checks that dashboards and alert rules name only metrics that exist.
func MetricNames() []string {
	var out []string
	for _, f := range statusFamilies {
		out = append(out, f.name)
	}
	for _, f := range []family{famUp, famLastSeen, famGroup, famEvents, famConnected, famBoxes, famMessages, famBad, famScrape} {
		out = append(out, f.name)
	}
	return out
}

// box is what the exporter knows of one box. It is immutable once made,
// so a scrape reads it without a lock; its samples are rendered when the
// document arrives, never at scrape time.
type box struct {
	device string
	online bool
	heard  time.Time // when the box was last heard (see Observe)
	// received is when the exporter got the document; retained whether
	// the broker replayed it (see Observe).
	received time.Time
	retained bool
	seen     time.Time // the document's own time
	version  string
	labels   string // device="…",site="…",version="…"
	groups   []string
	// lines holds the rendered samples of each status family; all nil
	// while the box is offline.
	lines [nStatus][]byte
}

// newBox renders d. prev, the box's previous record, lends its version
// to an offline document (a last will carries none), so the box keeps one
// label set across a crash. An error means the status decoded only in
// part; the box is still returned with what did.
func newBox(device string, d fleet.StatusDoc, heard time.Time, prev *box) (*box, error) {
	b := &box{device: device, online: d.Presence == fleet.Online, heard: heard, seen: d.Time, groups: d.Groups}
	if b.seen.IsZero() {
		b.seen = heard
	}
	site := ""
	if len(d.Groups) > 0 {
		// The first group is the box's site by convention (fleet/README.md).
		site = d.Groups[0]
	}
	if prev != nil {
		b.version = prev.version
	}
	if !b.online {
		b.labels = labelSet("device", device, "site", site, "version", b.version)
		return b, nil
	}
	doc, err := d.Doc()
	if doc.Version != "" {
		b.version = doc.Version
	}
	b.labels = labelSet("device", device, "site", site, "version", b.version)
	b.render(doc)
	return b, err
}

func (b *box) render(d status.Doc) {
	set := func(f int, v float64) { b.lines[f] = sample(nil, statusFamilies[f].name, b.labels, "", v) }
	if d.HasHealth() {
		set(fHealth, float64(d.Health.State.Code()))
		set(fSilent, b2f(d.Health.Silent))
	}
	set(fPlaying, b2f(d.State == player.StatePlaying))
	set(fWanted, b2f(d.Wanted == player.StatePlaying))
	set(fFlowing, b2f(d.AudioFlowing))
	set(fFallback, b2f(d.Fallback))
	set(fVolume, float64(d.Volume))
	set(fPlaylist, float64(d.PlaylistLength))
	set(fUptime, d.UptimeS)
	set(fWDHealthy, b2f(d.Watchdog.Fault == ""))
	set(fFaults, float64(d.Watchdog.Faults))
	set(fRecoveries, float64(d.Watchdog.Recoveries))
	if lf := d.Watchdog.LastFault; lf != nil && !lf.Time.IsZero() {
		b.lines[fLastFault] = sample(nil, statusFamilies[fLastFault].name, b.labels, labelSet("fault", string(lf.Fault)), unix(lf.Time))
	}
	if d.Disk != nil {
		set(fDiskWarning, b2f(d.Disk.Warning))
		if d.Disk.TotalBytes > 0 {
			set(fDiskFree, float64(d.Disk.FreeBytes))
			set(fDiskTotal, float64(d.Disk.TotalBytes))
		}
	}
	if s := d.System; s != nil {
		if s.ClockSynced != nil {
			set(fClock, b2f(*s.ClockSynced))
		}
		var lines []byte
		for _, c := range s.Certs {
			if c.Name != "" && !c.NotAfter.IsZero() {
				lines = sample(lines, statusFamilies[fCert].name, b.labels, labelSet("cert", c.Name), unix(c.NotAfter))
			}
		}
		b.lines[fCert] = lines
		if s.DataWrittenBytes != nil {
			set(fWritten, float64(*s.DataWrittenBytes))
		}
		if s.DiskFreeTrend != nil {
			set(fDiskTrend, *s.DiskFreeTrend)
		}
		if s.ALSAUnderruns != nil {
			set(fUnderruns, float64(*s.ALSAUnderruns))
		}
	}
}

// WriteMetrics writes every box's metrics in the Prometheus text format.
// It holds the lock only to copy the box pointers; the writing, to a
// client however slow, runs without it, so status updates never wait for
// a scrape.
func (e *Exporter) WriteMetrics(w io.Writer) error {
	start := time.Now()
	e.mu.RLock()
	boxes := make([]*box, 0, len(e.boxes))
	for _, b := range e.boxes {
		boxes = append(boxes, b)
	}
	e.mu.RUnlock()
	slices.SortFunc(boxes, func(a, b *box) int { return strings.Compare(a.device, b.device) })
	now := e.o.Now()

	bw := bufio.NewWriterSize(w, 64<<10)
	buf := make([]byte, 0, 256)
	header(bw, famUp)
	for _, b := range boxes {
		bw.Write(sample(buf[:0], famUp.name, b.labels, "", b2f(b.online && now.Sub(b.heard) <= e.o.StaleAfter)))
	}
	header(bw, famLastSeen)
	for _, b := range boxes {
		bw.Write(sample(buf[:0], famLastSeen.name, b.labels, "", unix(b.seen)))
	}
	header(bw, famGroup)
	for _, b := range boxes {
		for _, g := range b.groups {
			bw.Write(sample(buf[:0], famGroup.name, labelSet("device", b.device, "group", g), "", 1))
		}
	}
	for f, fam := range statusFamilies {
		header(bw, fam)
		for _, b := range boxes {
			if b.online && now.Sub(b.heard) <= e.o.StaleAfter {
				bw.Write(b.lines[f])
			}
		}
	}
	e.writeEvents(bw, buf)
	for _, x := range []struct {
		f family
		v float64
	}{
		{famConnected, b2f(e.connected.Load())},
		{famBoxes, float64(len(boxes))},
		{famMessages, float64(e.messages.Load())},
		{famBad, float64(e.bad.Load())},
		{famScrape, e.lastScrape()},
	} {
		header(bw, x.f)
		bw.Write(sample(buf[:0], x.f.name, "", "", x.v))
	}
	// The exporter's own process and Go runtime (memory, CPU, file
	// descriptors), as every Go exporter serves them.
	if fams, err := e.self.Gather(); err == nil {
		enc := expfmt.NewEncoder(bw, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, f := range fams {
			enc.Encode(f)
		}
	}
	err := bw.Flush()
	e.scrapeNS.Store(int64(time.Since(start)))
	return err
}

func (e *Exporter) lastScrape() float64 { return float64(e.scrapeNS.Load()) / 1e9 }

func header(w *bufio.Writer, f family) {
	w.WriteString("# HELP ")
	w.WriteString(f.name)
	w.WriteByte(' ')
	w.WriteString(f.help)
	w.WriteString("\n# TYPE ")
	w.WriteString(f.name)
	w.WriteByte(' ')
	w.WriteString(f.typ)
	w.WriteByte('\n')
}

// sample appends one line: name{labels,extra} value.
func sample(dst []byte, name, labels, extra string, v float64) []byte {
	dst = append(dst, name...)
	if labels != "" || extra != "" {
		dst = append(dst, '{')
		dst = append(dst, labels...)
		if labels != "" && extra != "" {
			dst = append(dst, ',')
		}
		dst = append(dst, extra...)
		dst = append(dst, '}')
	}
	dst = append(dst, ' ')
	dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
	return append(dst, '\n')
}

// labelSet renders name/value pairs, escaped as the text format wants
// (a version string or group comes from the box and may hold anything).
func labelSet(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(escaper.Replace(kv[i+1]))
		b.WriteByte('"')
	}
	return b.String()
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
