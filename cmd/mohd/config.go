package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// config holds every setting of mohd. Each field is a flag; a config file
// (`key = value` lines, keys named like the flags, `#` comments) may set the
// same keys, and flags given on the command line win.
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

	TargetLUFS  string
	MaxUploadMB int64
	MaxMinutes  int
	MinFreeMB   int64

	MQTTBroker string
	MQTTCA     string
	MQTTCert   string
	MQTTKey    string
	DeviceID   string
	Groups     string
}

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
	fs.StringVar(&c.Output, "output", "alsa", "audio output: alsa, alsa:DEVICE, file:PATH (raw s16le 44.1 kHz stereo, paced) or null")
	fs.StringVar(&c.MPD, "mpd", "", "address of an MPD that mohd does not own (default: mohd runs its own)")
	fs.StringVar(&c.MPDBin, "mpd-bin", "mpd", "mpd binary for the MPD that mohd owns")
	fs.StringVar(&c.MPDRestart, "mpd-restart", "systemctl restart mpd", "command that restarts an MPD given with --mpd")
	fs.BoolVar(&c.Reboot, "reboot", false, "allow the watchdog to reboot the box as its last resort (at most once per 24 h)")
	fs.StringVar(&c.TargetLUFS, "target-lufs", "-18", "loudness target of the library's renditions in LUFS, or `off`")
	fs.Int64Var(&c.MaxUploadMB, "max-upload-mb", 200, "largest upload accepted, in MiB")
	fs.IntVar(&c.MaxMinutes, "max-minutes", 120, "longest track accepted, in minutes")
	fs.Int64Var(&c.MinFreeMB, "min-free-mb", 200, "uploads are refused when they would leave less free disk than this")
	fs.StringVar(&c.MQTTBroker, "mqtt-broker", "", "fleet broker URL, e.g. mqtts://broker.example:8883 (empty: fleet link off)")
	fs.StringVar(&c.MQTTCA, "mqtt-ca", "", "CA certificate that signed the broker's certificate")
	fs.StringVar(&c.MQTTCert, "mqtt-cert", "", "this box's client certificate")
	fs.StringVar(&c.MQTTKey, "mqtt-key", "", "this box's client key")
	fs.StringVar(&c.DeviceID, "device-id", "", "device id on the fleet link (default: the data dir's device-id file)")
	fs.StringVar(&c.Groups, "groups", "", "comma-separated fleet groups of this box")
}

// parseFlags parses args, then fills every flag not given on the command
// line from the config file, if any.
func parseFlags(fs *flag.FlagSet, c *config, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
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
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want `key = value`, got %q", path, n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		out = append(out, kv{k, v, n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return out, nil
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
		return fmt.Errorf("--backend %q: want direct or mpd", c.Backend)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.TLS != "" && c.TLS != "auto" {
		return fmt.Errorf("--tls %q: the only value is auto", c.TLS)
	}
	return nil
}
