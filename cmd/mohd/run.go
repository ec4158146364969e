package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sync/errgroup"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/internal/datadir"
	"github.com/mohproject/moh/internal/metrics"
	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/internal/sysinfo"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/uploads"
	"github.com/mohproject/moh/webui"
)

// run is `mohd run`: every long-running part is a func(ctx) error under one
// errgroup; the first to fail stops the others.
func run(ctx context.Context, c *config, log *slog.Logger) error {
	// A FIFO reader (a PBX) going away must be an error on write, not the
	// death of mohd.
	signal.Ignore(syscall.SIGPIPE)
	tuneGC()
	log.Info("mohd starting", "version", version, "backend", c.Backend, "output", c.Output,
		"data", c.Data, "music", c.Music, "listen", c.Listen)

	if err := os.MkdirAll(c.Data, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", c.Data, err)
	}
	// One daemon per data dir, taken before anything else touches it: a
	// second one would sweep the first's temp files and overwrite its
	// index. It stops here, having changed nothing.
	held, err := datadir.Acquire(c.Data)
	if err != nil {
		return err
	}
	defer held.Release()
	if err := os.MkdirAll(c.Music, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", c.Music, err)
	}
	// Holding the data dir, the sweep can only meet a crash's leftovers
	// or the locked temp file of a `mohd token|passwd` writing beside us,
	// which it keeps.
	if n, _ := atomicfile.CleanTemps(c.Data); n > 0 {
		log.Info("removed temp files left by an interrupted write", "count", n)
	}
	outs, err := player.ParseOutputs(c.Output)
	if err != nil {
		return err
	}
	fallback, err := player.EnsureFallback(c.Data)
	if err != nil {
		return fmt.Errorf("built-in track: %w", err)
	}

	events := player.NewEventLog(200, nil)
	log, logFwd, err := startSyslog(c, log, events)
	if err != nil {
		return err
	}
	libOpts, err := libraryOptions(c, log, func(kind, msg string) {
		events.Add(player.Event{Kind: "library", Message: kind + ": " + msg})
	})
	if err != nil {
		return err
	}
	lib, err := uploads.Open(libOpts)
	if err != nil {
		return fmt.Errorf("open library: %w", err)
	}
	warnMissingIngestTools(log, libOpts)

	lineOut, err := newLineOutputs(c, outs, log) // outputs.go; lineOut.Hub is the telephone signal
	if err != nil {
		return err
	}
	sipServers, err := newSIPServers(c, lineOut, events, log) // sip.go
	if err != nil {
		return err
	}
	backend, err := newBackend(c, outs[0], lineOut, lib.RenditionDir(), log)
	if err != nil {
		return err
	}
	store := newStateStore(c.Data, log)
	var agent *fleet.Agent // set below, before anything asks for status
	// web is set below too; the agent publishes its status document once
	// running (its goroutine starts after web is made).
	var web *webui.Server
	p := player.New(player.Options{
		Degraded: func() []string { return degradedParts(lib, agent) },
		Backend:  backend,
		Logger:   log,
		Fallback: fallback,
		Settings: store.Load(),
		Save:     store.Save,
		Events:   events,
	})
	// The programme is applied before playback starts, so a power cut
	// resumes the site's music (the rule, exception or override in force),
	// not the built-in track.
	progStore, prog, err := openProgramme(c.Data, lib, p, backend, events, log)
	if err != nil {
		return err
	}
	prog.Apply()
	wd := player.NewWatchdog(player.WatchdogOptions{
		Backend:         backend,
		Wanted:          func() bool { return p.Settings().Playing },
		Events:          events,
		Logger:          log,
		Reboot:          c.Reboot,
		RebootStampPath: filepath.Join(c.Data, "last-reboot"),
		RebootCommand:   strings.Fields(c.Update.RebootCommand),
	})
	p.SetWatchdog(wd) // Status and /healthz report its verdict; it runs beside the player below
	sys := sysinfo.New(sysinfo.Options{DataDir: c.Data, CertFiles: func() map[string]string { return boxCerts(c) },
		DiskFree: diskFreeReader(lib), Underruns: underrunReader(c.Output)})
	upd, err := newUpdater(c, log, events, p)
	if err != nil {
		return err
	}

	if c.MQTTBroker != "" {
		id, err := deviceID(c)
		if err != nil {
			return err
		}
		agent, err = fleet.NewAgent(fleet.AgentOptions{
			BrokerURL: c.MQTTBroker,
			CAFile:    c.MQTTCA,
			CertFile:  c.MQTTCert,
			KeyFile:   c.MQTTKey,
			DeviceID:  id,
			Groups:    splitList(c.Groups),
			Ops: fleetOps{p: p, lib: lib, upd: upd, prog: programmeAPI{store: progStore, eng: prog}, doc: func() status.Doc {
				if web == nil { // not yet: the agent runs after web is made
					d := lib.Disk()
					return status.Build(p, &d, version)
				}
				return web.StatusDoc()
			}},
			Logger:  log,
			TempDir: c.Data,
			// rotated pairs (mohctl cert rotate) live in the data dir
			// and win over --mqtt-cert/--mqtt-key
			CertDir: certDir(c),
		})
		if err != nil {
			return fmt.Errorf("fleet link: %w", err)
		}
		events.Subscribe(agent.PublishEvent) // each event on moh/<id>/events too
	}
	connected := func() bool { return agent != nil && agent.Connected() }
	if agent == nil {
		connected = nil
	}
	m := metrics.New(metricsOptions(p, lib, sys, connected))
	if c.Backend != "mpd" {
		m.Registry().MustRegister(metrics.NewOutputsCollector(lineOut.Lines.Statuses))
	}
	if upd.On() {
		m.Registry().MustRegister(metrics.NewUpdateCollector(updateMetrics{upd}))
	}

	httpsCert, httpsKey, httpsAuto := httpsPair(c)
	web, err = webui.New(webui.Options{
		System:         withUpdate(sys.Read, upd),
		Update:         upd,
		Player:         p,
		Library:        lib,
		Programme:      programmeAPI{store: progStore, eng: prog},
		DataDir:        c.Data,
		Logger:         log,
		Version:        version,
		Metrics:        m.Handler(),
		TLSCert:        httpsCert,
		TLSKey:         httpsKey,
		TLSAuto:        httpsAuto,
		MaxUploadBytes: c.MaxUploadMB<<20 + 1<<20,
		Middleware:     []func(http.Handler) http.Handler{m.HTTPMiddleware},
		OnUpload:       m.CountUpload,
		Streams:        lineOut.streamHub(c), // streams.go: GET /api/v1/stream/{format}
		Lame:           libOpts.Tools.Lame,
	})
	if err != nil {
		return err
	}
	m.Registry().MustRegister(metrics.NewStreamsCollector(web.StreamStats))
	if agent != nil && web.TLS() {
		agent.RotateHTTPS(func(f string) error { return web.ReloadTLS(f, f) }, web.TLSCertificate)
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Run(ctx) })
	if c.Backend != "mpd" {
		g.Go(func() error { return lineOut.Run(ctx) })
	}
	// The watchdog's exit rung ends mohd (an error wrapping
	// player.ErrExitRequested), so systemd restarts it.
	g.Go(func() error { return wd.Run(ctx) })
	for _, s := range sipServers { // a failing listener retries on its own; Run never fails mohd
		g.Go(func() error { return s.Run(ctx) })
	}
	g.Go(func() error { return lib.Run(ctx) })
	g.Go(func() error { return sys.Run(ctx) }) // the disk trend's readings
	g.Go(func() error { return runProgramme(ctx, lib, progStore, prog, log) })
	g.Go(func() error { return web.Run(ctx, c.Listen) })
	g.Go(func() error { return upd.Run(ctx) })
	if agent != nil {
		g.Go(func() error { return agent.Run(ctx) })
	}
	if logFwd != nil {
		g.Go(func() error { return logFwd.Run(ctx) })
	}
	g.Go(func() error { return notifySystemd(ctx, wd.OK, log) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func newBackend(c *config, out player.Output, lineOut *lineOutputs, renditionDir string, log *slog.Logger) (player.Backend, error) {
	switch c.Backend {
	case "mpd":
		runDir := os.Getenv("RUNTIME_DIRECTORY") // systemd's tmpfs /run/moh
		if runDir == "" {
			runDir = filepath.Join(c.Data, "run")
		}
		return player.NewMPD(player.MPDOptions{
			Logger:         log,
			Output:         out,
			RenditionDir:   renditionDir,
			RunDir:         runDir,
			Binary:         c.MPDBin,
			Addr:           c.MPD,
			RestartCommand: strings.Fields(c.MPDRestart),
		})
	default:
		return player.NewDirect(player.DirectOptions{
			Logger:   log,
			OpenSink: lineOut.Lines.OpenSink,
			Outputs:  lineOut.Lines.Statuses,
			OnTone:   lineOut.onTone,
			PCMCache: newPCMCache(c, log),
		}), nil
	}
}

// notifySystemd tells systemd mohd is ready once playback has had its
// first second, and pets systemd's watchdog only while ok: audio really
// flows, or the admin stopped it. If audio stops on its own for
// WatchdogSec, systemd restarts mohd, one more rung of the ladder.
func notifySystemd(ctx context.Context, ok func() bool, log *slog.Logger) error {
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(time.Second):
	}
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("sd_notify READY", "err", err)
	} else if ok {
		log.Info("told systemd: ready")
	}
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(interval / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			daemon.SdNotify(false, daemon.SdNotifyStopping)
			return nil
		case <-t.C:
			if ok() {
				daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}
	}
}

// boxCerts names the certificates whose expiry the box reports: its fleet
// client certificate and the one its HTTPS serves (given, or made by
// --tls auto in the data dir).
func boxCerts(c *config) map[string]string {
	certs := map[string]string{}
	if c.MQTTCert != "" {
		certs["fleet"], _ = fleet.ActivePair(certDir(c), fleet.CertKindFleet, c.MQTTCert, c.MQTTKey)
	}
	switch f, _, _ := httpsPair(c); {
	case f != "":
		certs["https"] = f
	case c.TLS == "auto":
		certs["https"] = filepath.Join(c.Data, webui.AutoCertFile)
	}
	return certs
}

// degradedParts lists what is wrong beside the player without silencing
// the line, for the health model: the disk filling up, the fleet link
// down.
func degradedParts(lib *uploads.Library, agent *fleet.Agent) []string {
	var out []string
	if d := lib.Disk(); d.Warning {
		out = append(out, d.Message)
	}
	if agent != nil && !agent.Connected() {
		out = append(out, "fleet link down: the box cannot be managed from the fleet")
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// warnMissingIngestTools says at start, not at the first upload, when the
// programs the library's ingest runs are not installed. Playback does not
// need them.
func warnMissingIngestTools(log *slog.Logger, opts uploads.Options) {
	if missing := uploads.MissingTools(opts); len(missing) > 0 {
		log.Warn("uploads will be refused until the ingest tools are installed (Debian: apt-get install mpg123 sox libsox-fmt-mp3 lame)",
			"missing", strings.Join(missing, ", "))
	}
}
