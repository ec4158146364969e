package main

import (
	"flag"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/internal/logfwd"
	"github.com/mohproject/moh/player"
)

// Bounds of --syslog-buffer: a handful is useless, and a million
// messages of a few hundred bytes would be a real share of a small box's
// RAM.
const minSyslogRing, maxSyslogRing = 10, 100_000

// syslogFlags are the central-log settings of `mohd run`.
func syslogFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.Syslog, "syslog", "", "central syslog collector: tls://HOST:6514 (RFC 5425), tcp://HOST:PORT or udp://HOST:PORT (empty: off)")
	fs.StringVar(&c.SyslogCA, "syslog-ca", "", "CA that signed the collector's certificate (default: --mqtt-ca, else the system roots)")
	fs.StringVar(&c.SyslogCert, "syslog-cert", "", "client certificate shown to the collector (default: --mqtt-cert)")
	fs.StringVar(&c.SyslogKey, "syslog-key", "", "client key (default: --mqtt-key)")
	fs.StringVar(&c.SyslogLevel, "syslog-level", "warn", "lowest log level forwarded besides the events: debug, info, warn, error")
	fs.IntVar(&c.SyslogRing, "syslog-buffer", logfwd.DefaultRing, fmt.Sprintf("messages kept in RAM while the collector is away, the oldest dropped first (%d to %d)", minSyslogRing, maxSyslogRing))
}

// checkSyslog checks the syslog settings before mohd touches its data
// dir, like every other value (checkRun).
func (c *config) checkSyslog() error {
	if c.Syslog == "" {
		return nil
	}
	if _, err := logfwd.New(logfwd.Options{URL: c.Syslog}); err != nil {
		return c.bad("syslog", c.Syslog, "want tls://HOST[:PORT] (RFC 5425, port 6514), tcp://HOST[:PORT] or udp://HOST[:PORT] (port 514)")
	}
	if _, ok := parseLogLevel(c.SyslogLevel); !ok {
		return c.bad("syslog-level", c.SyslogLevel, "want debug, info, warn or error")
	}
	if c.SyslogRing < minSyslogRing || c.SyslogRing > maxSyslogRing {
		return c.bad("syslog-buffer", strconv.Itoa(c.SyslogRing), fmt.Sprintf("want %d to %d messages", minSyslogRing, maxSyslogRing))
	}
	return nil
}

// startSyslog makes the forwarder when --syslog is set: every event of
// the log and every record at --syslog-level or above goes to the
// collector. It returns the logger the rest of mohd uses (log, teed into
// the forwarder) and the forwarder to run, nil when off. The forwarder
// itself reports through the untouched log, so news of an absent
// collector does not queue for that collector.
func startSyslog(c *config, log *slog.Logger, events *player.EventLog) (*slog.Logger, *logfwd.Forwarder, error) {
	if c.Syslog == "" {
		return log, nil, nil
	}
	if err := c.checkSyslog(); err != nil {
		return nil, nil, err
	}
	level, _ := parseLogLevel(c.SyslogLevel)
	ca, cert, key := c.SyslogCA, c.SyslogCert, c.SyslogKey
	if ca == "" {
		ca = c.MQTTCA
	}
	if cert == "" && key == "" {
		cert, key = c.MQTTCert, c.MQTTKey
	}
	tc, err := fleet.TLSConfig(ca, cert, key)
	if err != nil {
		return nil, nil, fmt.Errorf("syslog: %w", err)
	}
	id, err := deviceID(c)
	if err != nil {
		return nil, nil, err
	}
	site := ""
	if g := splitList(c.Groups); len(g) > 0 {
		site = g[0] // the first group is the site (fleet/README.md)
	}
	fwd, err := logfwd.New(logfwd.Options{
		URL: c.Syslog, TLSConfig: tc, Hostname: id, Device: id, Site: site, Version: version, Logger: log,
		Ring: c.SyslogRing,
	})
	if err != nil {
		return nil, nil, c.bad("syslog", c.Syslog, err.Error())
	}
	events.Subscribe(func(e player.Event) { fwd.Send(eventMessage(e)) })
	log.Info("forwarding events and logs to syslog", "collector", c.Syslog, "level", level.String())
	return slog.New(logfwd.NewHandler(log.Handler(), fwd, level)), fwd, nil
}

// eventMessage is an event as a syslog message: the kind is its MSGID,
// faults are errors (callers may hear silence), what the admin did or the
// watchdog repaired a notice.
func eventMessage(e player.Event) logfwd.Message {
	sev := logfwd.SevNotice
	switch e.Kind {
	case "fault":
		sev = logfwd.SevError
	case "skip", "sink", "security":
		sev = logfwd.SevWarning
	case "library":
		sev = logfwd.SevInfo
	}
	var ps []logfwd.Param
	if e.Fault != "" {
		ps = append(ps, logfwd.Param{Name: "fault", Value: string(e.Fault)})
	}
	if e.Rung != "" {
		ps = append(ps, logfwd.Param{Name: "rung", Value: e.Rung})
	}
	if e.RecoveryMS > 0 {
		ps = append(ps, logfwd.Param{Name: "recovery_ms", Value: strconv.FormatInt(e.RecoveryMS, 10)})
	}
	return logfwd.Message{Time: e.Time, Severity: sev, MsgID: e.Kind, Text: e.Message, Event: ps}
}
