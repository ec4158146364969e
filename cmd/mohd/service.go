package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/kardianos/service"
)

// unitTemplate is mohd's systemd unit. kardianos/service's default
// hard-codes RestartSec=120, two minutes of silence on hold after a crash;
// moh restarts in two seconds, tells systemd when it is really playing
// (Type=notify) and pings the watchdog only while audio flows. There is no
// start limit: a unit that hits one stays down for good, and a hold line
// must never give up; a broken setup costs a restart every two seconds
// at most, and the watchdog's own ladder backs off before it exits. No
// network dependency: after a power cut the box must play with the cable
// unplugged.
const unitTemplate = `[Unit]
Description={{Description}}
After=sound.target local-fs.target
StartLimitIntervalSec=0

[Service]
Type=notify
NotifyAccess=main
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
{{if UserName}}User={{UserName}}
Group={{UserName}}
{{end}}SupplementaryGroups=audio
Restart=always
RestartSec=2
WatchdogSec=15
TimeoutStartSec=30
TimeoutStopSec=10
StateDirectory=moh
StateDirectoryMode=0750
RuntimeDirectory=moh
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=-/var/lib/moh
LimitNOFILE=4096
# Playback first: the audio loop needs about 1 % of a core, but within
# ~250 ms whatever else runs (an ingest, a fleet update, a login storm).
# Measured: with both cores saturated, nice 0 lost audio, -10 did not.
# Ingest tools drop themselves to nice 10 and the idle I/O class. No
# real-time policy: a Go process cannot give it to one goroutine, and a
# whole runaway process at real-time priority would lock the box up.
Nice=-10
IOSchedulingClass=best-effort
IOSchedulingPriority=0

[Install]
WantedBy=multi-user.target
`

// serviceUser is the unprivileged account mohd runs as; it is in the audio
// group through SupplementaryGroups.
const serviceUser = "moh"

type program struct{}

func (program) Start(service.Service) error { return nil }
func (program) Stop(service.Service) error  { return nil }

func newService(c *config) (service.Service, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locate mohd: %w", err)
	}
	args := []string{"run", "--data", c.Data}
	if c.ConfigPath != "" {
		args = append(args, "--config", c.ConfigPath)
	}
	return service.New(program{}, &service.Config{
		Name:        "mohd",
		DisplayName: "moh music-on-hold",
		Description: "moh music-on-hold player",
		Executable:  exe,
		Arguments:   args,
		UserName:    serviceUser,
		Option: service.KeyValue{
			"SystemdScript": unitTemplate,
		},
	})
}

// serviceCommand runs install, uninstall, start, stop or status.
func serviceCommand(verb string, c *config) error {
	s, err := newService(c)
	if err != nil {
		return err
	}
	switch verb {
	case "install":
		if err := ensureUser(); err != nil {
			return err
		}
		if err := service.Control(s, "install"); err != nil {
			return fmt.Errorf("install: %w (uninstall first if a unit exists)", err)
		}
		fmt.Println("installed mohd.service (enabled at boot); start it with: mohd start")
		return nil
	case "uninstall", "start", "stop":
		return service.Control(s, verb)
	case "status":
		st, err := s.Status()
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		switch st {
		case service.StatusRunning:
			fmt.Println("mohd: running")
		case service.StatusStopped:
			fmt.Println("mohd: stopped")
			os.Exit(3)
		default:
			fmt.Println("mohd: unknown")
			os.Exit(4)
		}
		return nil
	}
	return errors.New("unknown service verb " + verb)
}
