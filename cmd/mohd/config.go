package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// config holds every setting of mohd. Each field is a flag; a config file
// (`key = value` lines, keys named like the flags, `#` comments) may set the
// same keys, and flags given on the command line win.
//
// Every value is checked before mohd acts on it (checkCommon for every
// subcommand, checkRun for `mohd run`): a value outside what is allowed
// stops mohd at start with the key, the value and what is allowed, rather
// than falling back to a default or failing later, one upload at a time.
type config struct {
	ConfigPath string
	Data       string
	Music      string
	Listen     string
	Backend    string
	Output     string
	MPD        string
	MPDBin     string
	MPDRestart string
	LogFormat  string
	LogLevel   string
	TLS        string
	TLSCert    string
	TLSKey     string
	Reboot     bool
	Update     updateConfig

	TargetLUFS  string
	MaxUploadMB int64
	MaxMinutes  int
	MinFreeMB   int64
	// PCMCacheMB is the direct backend's decoded-track cache budget.
	PCMCacheMB int64
	// PhoneLevel is the telephone signal's active level, dBm0.
	PhoneLevel float64
	// SIP is the SIP music-on-hold server's settings (sip.go).
	SIP sipConfig

	MQTTBroker string
	MQTTCA     string
	MQTTCert   string
	MQTTKey    string
	DeviceID   string
	Groups     string

	// Syslog settings: see syslog.go.
	Syslog      string
	SyslogCA    string
	SyslogCert  string
	SyslogKey   string
	SyslogLevel string
	SyslogRing  int

	// level is LogLevel, parsed by checkCommon.
	level slog.Level
	// from names the config file line each key was read from, for errors.
	from map[string]string
}

// Allowed ranges of the numeric settings of `mohd run`. The upper bounds
// keep the byte and duration arithmetic far from overflow and catch a
// value typed in the wrong unit.
const (
	minTargetLUFS, maxTargetLUFS = -70.0, 0.0
	maxUploadMB                  = 10240   // 10 GiB
	maxMinutes                   = 1440    // 24 h
	maxMinFreeMB                 = 1 << 20 // 1 TiB
)

// defaultDataDir is where an installed mohd keeps its state.
const defaultDataDir = "/var/lib/moh"

// commonFlags are the flags every subcommand takes, so each works on the
// same data dir as `run`.
func commonFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.ConfigPath, "config", "", "config file (`key = value` lines; flags win)")
	fs.StringVar(&c.Data, "data", defaultDataDir, "data dir: state, tokens, password hash, library")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "HTTP address of the web page and API")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.TLS, "tls", "", "`auto` serves HTTPS with a self-signed certificate kept in the data dir")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate file (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS key file")
}

// runFlags are the flags of `mohd run`.
func runFlags(fs *flag.FlagSet, c *config) {
	commonFlags(fs, c)
	fs.StringVar(&c.Music, "music", "", "library folder of MP3s; files copied here are picked up (default DATA/library)")
	fs.StringVar(&c.Backend, "backend", "direct", "playback backend: direct or mpd")
	fs.StringVar(&c.Output, "output", "alsa", "comma-separated outputs played at once: one of alsa, alsa:DEVICE, file:PATH (raw s16le 44.1 kHz stereo, paced) or null; and rtp:GROUP:PORT[?codec=pcmu|pcma&ttl=N&dscp=N&iface=NAME], sip[:ADDR:PORT] (direct backend)")
	fs.Float64Var(&c.PhoneLevel, "phone-level", -19, "active level of the telephone signal (RTP, SIP, streams) in dBm0, -40 to -6")
	fs.StringVar(&c.MPD, "mpd", "", "address of an MPD that mohd does not own (default: mohd runs its own)")
	fs.StringVar(&c.MPDBin, "mpd-bin", "mpd", "mpd binary for the MPD that mohd owns")
	fs.StringVar(&c.MPDRestart, "mpd-restart", "systemctl restart mpd", "command that restarts an MPD given with --mpd")
	fs.BoolVar(&c.Reboot, "reboot", false, "allow the watchdog to reboot the box as its last resort (at most once per 24 h)")
	fs.StringVar(&c.TargetLUFS, "target-lufs", "-18", "loudness target of the library's renditions in LUFS (-70 to 0), or `off`")
	fs.Int64Var(&c.MaxUploadMB, "max-upload-mb", 200, "largest upload accepted, in MiB (1 to 10240)")
	fs.IntVar(&c.MaxMinutes, "max-minutes", 120, "longest track accepted, in minutes (1 to 1440)")
	fs.Int64Var(&c.MinFreeMB, "min-free-mb", 200, "uploads are refused when they would leave less free disk than this, in MiB (0 to 1048576; 0: only when they do not fit)")
	fs.Int64Var(&c.PCMCacheMB, "pcm-cache-budget", 0, "disk the direct backend may use for decoded tracks (10.6 MB per minute of audio), in MiB (0: a quarter of the free space; -1: off, decode live)")
	fs.StringVar(&c.MQTTBroker, "mqtt-broker", "", "fleet broker URL, e.g. mqtts://broker.example:8883 (empty: fleet link off)")
	fs.StringVar(&c.MQTTCA, "mqtt-ca", "", "CA certificate that signed the broker's certificate")
	fs.StringVar(&c.MQTTCert, "mqtt-cert", "", "this box's client certificate")
	fs.StringVar(&c.MQTTKey, "mqtt-key", "", "this box's client key")
	fs.StringVar(&c.DeviceID, "device-id", "", "device id on the fleet link (default: the data dir's device-id file)")
	fs.StringVar(&c.Groups, "groups", "", "comma-separated fleet groups of this box")
	updateFlags(fs, &c.Update)
	syslogFlags(fs, c)
	sipFlags(fs, &c.SIP)
}

// parseFlags parses args, then fills every flag not given on the command
// line from the config file, if any, and checks the settings every
// subcommand shares.
func parseFlags(fs *flag.FlagSet, c *config, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if err := mergeConfigFile(fs, c); err != nil {
		return err
	}
	return c.checkCommon()
}

// mergeConfigFile sets every flag not given on the command line from the
// config file, if there is one.
func mergeConfigFile(fs *flag.FlagSet, c *config) error {
	if c.ConfigPath == "" {
		return nil
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	kv, err := readConfigFile(c.ConfigPath)
	if err != nil {
		return err
	}
	for _, e := range kv {
		if e.key == "config" {
			return fmt.Errorf("%s:%d: config files cannot include other config files", c.ConfigPath, e.line)
		}
		f := fs.Lookup(e.key)
		if f == nil {
			if knownKey(e.key) {
				continue // a key of another subcommand, e.g. `music` for `mohd check`
			}
			return fmt.Errorf("%s:%d: unknown key %q", c.ConfigPath, e.line, e.key)
		}
		if set[e.key] {
			continue
		}
		if err := fs.Set(e.key, e.value); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", c.ConfigPath, e.line, e.key, err)
		}
		if c.from == nil {
			c.from = map[string]string{}
		}
		c.from[e.key] = fmt.Sprintf("%s:%d", c.ConfigPath, e.line)
	}
	return nil
}

// knownKey reports whether key is a flag of `mohd run`, the superset of
// every subcommand's keys.
func knownKey(key string) bool {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	runFlags(fs, &config{})
	return fs.Lookup(key) != nil
}

type kv struct {
	key, value string
	line       int
}

func readConfigFile(path string) ([]kv, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	var out []kv
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, raw, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want `key = value`, got %q", path, n, line)
		}
		v, err := configValue(raw)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", path, n, strings.TrimSpace(k), err)
		}
		out = append(out, kv{strings.TrimSpace(k), v, n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return out, nil
}

// configValue is the value part of a config line: a `#` at its start or
// after a space or tab begins a comment, as on a line of its own. A value
// in double quotes is taken as it is up to the closing quote, `#` and
// spaces included (there are no escapes); only a comment may follow it.
// A `#` inside an unquoted word is part of it (alsa:hw#1 stays whole).
func configValue(raw string) (string, error) {
	v := strings.TrimSpace(raw)
	if strings.HasPrefix(v, `"`) {
		end := strings.IndexByte(v[1:], '"')
		if end < 0 {
			return "", errors.New("the value's quote is not closed")
		}
		if rest := strings.TrimSpace(v[end+2:]); rest != "" && !strings.HasPrefix(rest, "#") {
			return "", fmt.Errorf("%q after the closing quote", rest)
		}
		return v[1 : end+1], nil
	}
	for i := range len(v) {
		if v[i] == '#' && (i == 0 || v[i-1] == ' ' || v[i-1] == '\t') {
			return strings.TrimSpace(v[:i]), nil
		}
	}
	return v, nil
}

// bad is the error for a value outside what is allowed: the key, the value
// as given, what is allowed, and the config file line it came from.
func (c *config) bad(key, value, allowed string) error {
	return fmt.Errorf("%s--%s %q: %s", c.source(key), key, value, allowed)
}

// source is "FILE:LINE: " when key came from the config file, else "".
func (c *config) source(key string) string {
	if src, ok := c.from[key]; ok {
		return src + ": "
	}
	return ""
}

// checkCommon checks the settings every subcommand takes.
func (c *config) checkCommon() error {
	lvl, ok := parseLogLevel(c.LogLevel)
	if !ok {
		return c.bad("log-level", c.LogLevel, "want debug, info, warn or error")
	}
	c.level = lvl
	switch c.LogFormat {
	case "text", "json":
	default:
		return c.bad("log-format", c.LogFormat, "want text or json")
	}
	return nil
}

// parseLogLevel accepts the four documented names, in any case.
func parseLogLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}

// checkRun checks the settings only `mohd run` takes. main calls it before
// run, so a bad value stops mohd before it creates or locks the data dir.
func (c *config) checkRun() error {
	if _, _, ok := parseTargetLUFS(c.TargetLUFS); !ok {
		return c.bad("target-lufs", c.TargetLUFS, fmt.Sprintf("want a loudness from %g to %g LUFS, e.g. -18, or off", minTargetLUFS, maxTargetLUFS))
	}
	if c.MaxUploadMB < 1 || c.MaxUploadMB > maxUploadMB {
		return c.bad("max-upload-mb", strconv.FormatInt(c.MaxUploadMB, 10), fmt.Sprintf("want a size from 1 to %d MiB", maxUploadMB))
	}
	if c.MaxMinutes < 1 || c.MaxMinutes > maxMinutes {
		return c.bad("max-minutes", strconv.Itoa(c.MaxMinutes), fmt.Sprintf("want a length from 1 to %d minutes", maxMinutes))
	}
	if c.PCMCacheMB < -1 || c.PCMCacheMB > maxMinFreeMB {
		return c.bad("pcm-cache-budget", strconv.FormatInt(c.PCMCacheMB, 10), fmt.Sprintf("want a size from 0 to %d MiB (0: a quarter of the free space), or -1 for off", maxMinFreeMB))
	}
	if c.MinFreeMB < 0 || c.MinFreeMB > maxMinFreeMB {
		return c.bad("min-free-mb", strconv.FormatInt(c.MinFreeMB, 10), fmt.Sprintf("want a size from 0 to %d MiB (0: refuse only uploads that do not fit)", maxMinFreeMB))
	}
	if err := c.checkOutputs(); err != nil { // outputs.go
		return err
	}
	if err := c.checkUpdate(); err != nil {
		return err
	}
	if err := c.checkSIP(); err != nil { // sip.go
		return err
	}
	if err := c.checkSyslog(); err != nil { // syslog.go
		return err
	}
	return nil
}

// parseTargetLUFS reads --target-lufs: off, or a finite loudness within
// the range a rendition can be normalised to. NaN passes a plain range
// check (every comparison with it is false), hence the explicit test.
func parseTargetLUFS(s string) (lufs float64, off, ok bool) {
	if strings.EqualFold(s, "off") {
		return 0, true, true
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < minTargetLUFS || v > maxTargetLUFS {
		return 0, false, false
	}
	return v, false, true
}

// finish derives defaults that depend on other settings and checks values.
func (c *config) finish() error {
	if c.Data == "" {
		return errors.New("--data must not be empty")
	}
	abs, err := filepath.Abs(c.Data)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	c.Data = abs
	if c.Music == "" {
		c.Music = filepath.Join(c.Data, "library")
	}
	if c.Music, err = filepath.Abs(c.Music); err != nil {
		return fmt.Errorf("music dir: %w", err)
	}
	switch c.Backend {
	case "direct", "mpd", "":
	default:
		return c.bad("backend", c.Backend, "want direct or mpd")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.TLS != "" && c.TLS != "auto" {
		return c.bad("tls", c.TLS, "the only value is auto")
	}
	return nil
}
