// Command mohd is the moh appliance daemon: it plays the site's hold music
// on an endless gapless loop, heals itself, and serves the admin page and
// API. Its subcommands install it as a system service, create API tokens,
// set the admin password and check its health for monitoring.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: mohd COMMAND [flags]

commands:
  run        play and serve the admin page and API (the service runs this)
  install    install mohd as a systemd service started at boot, as user moh
  uninstall  remove the service
  start      start the service
  stop       stop the service
  status     show whether the service runs
  check      Nagios/NRPE health check of the running mohd
  token      manage API tokens: token create --scope read|operate|admin [--name N],
             token list, token revoke ID
  passwd     set the admin password (read from stdin)
  version    print the version

Every command takes --config FILE and --data DIR. 'mohd COMMAND -h' lists its flags.
`

func main() {
	os.Exit(mainErr(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func mainErr(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	var c config
	fs := flag.NewFlagSet("mohd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch cmd {
	case "run":
		runFlags(fs, &c)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "mohd", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "install", "uninstall", "start", "stop", "status", "passwd":
		commonFlags(fs, &c)
	case "check":
		return checkCommand(fs, &c, args, stdout, stderr)
	case "token":
		return tokenCommand(fs, &c, args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "mohd: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err := parseFlags(fs, &c, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "mohd:", err)
		return 2
	}
	if err := c.finish(); err != nil {
		fmt.Fprintln(stderr, "mohd:", err)
		return 2
	}
	if cmd == "run" {
		if err := c.checkRun(); err != nil {
			fmt.Fprintln(stderr, "mohd:", err)
			return 2
		}
	}
	var err error
	switch cmd {
	case "run":
		log := newLogger(&c, stderr)
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = run(ctx, &c, log)
		if err != nil {
			log.Error("mohd stopped", "err", err)
			return 1
		}
		return 0
	case "passwd":
		err = passwdCommand(&c, stdin, stdout)
	default:
		err = serviceCommand(cmd, &c)
	}
	if err != nil {
		fmt.Fprintln(stderr, "mohd:", err)
		return 1
	}
	return 0
}

// newLogger logs at the level checkCommon parsed: a mistyped level was
// refused at start, never quietly taken as info.
func newLogger(c *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
