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
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// commands is mohd's command list, in the order the usage shows it; the
// top-level usage and each command's own are printed from it.
var commands = []struct{ name, args, help string }{
	{"run", "[flags]", "play and serve the admin page and API (the service runs this)"},
	{"install", "[flags]", "install mohd as a systemd service started at boot, as user moh"},
	{"uninstall", "[flags]", "remove the service"},
	{"start", "[flags]", "start the service"},
	{"stop", "[flags]", "stop the service"},
	{"status", "[flags]", "show whether the service runs"},
	{"check", "[flags]", "Nagios/NRPE health check of the running mohd (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"},
	{"token", "create --scope read|operate|admin [--name N] | list | revoke ID [flags]", "manage API tokens (a new token is printed once)"},
	{"passwd", "[flags]", "set the admin password: asked twice at a terminal, else one line from stdin"},
	{"grubenv", "FILE list | set NAME=VALUE... | unset NAME...", "edit a GRUB environment block in place (RAUC runs it as grub-editenv)"},
	{"version", "", "print the version"},
}

// usage is the top-level usage.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: mohd COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.help)
	}
	b.WriteString("\nEvery command takes --config FILE and --data DIR. 'mohd COMMAND --help' lists its flags.\n")
	return b.String()
}

// usageError is a mistake on the command line itself (an unknown flag, a
// value the flag cannot hold, a stray argument): mohd prints the error and
// the command's usage to stderr and exits 2. A bad setting (the right
// flag, a value out of range) is reported without the usage.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// newFlagSet makes a subcommand's flag set. The flag package's own
// printing is off: parseCommand prints the usage where it belongs.
func newFlagSet(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet("mohd "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// printUsage writes a subcommand's usage and flags to w.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	name := strings.TrimPrefix(fs.Name(), "mohd ")
	for _, c := range commands {
		if c.name == name {
			fmt.Fprintf(w, "usage: mohd %s %s\n\n%s.\n\nflags:\n", c.name, c.args, c.help)
		}
	}
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// parseCommand parses a subcommand's flags with mohd's conventions:
// --help prints the usage to stdout (exit 0), a command-line mistake
// prints the error and the usage to stderr (exit 2), a bad setting prints
// the error (exit 2). ok is true when the command should go on.
func parseCommand(fs *flag.FlagSet, c *config, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	err := parseFlags(fs, c, args)
	if err == nil {
		err = c.finish()
	}
	var ue usageError
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout, fs)
		return 0, false
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mohd: %v\n\n", err)
		printUsage(stderr, fs)
		return 2, false
	}
	fmt.Fprintln(stderr, "mohd:", err)
	return 2, false
}

func main() {
	os.Exit(mainErr(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func mainErr(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	cmd, args := args[0], args[1:]
	var c config
	fs := newFlagSet(cmd)
	switch cmd {
	case "run":
		runFlags(fs, &c)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "mohd", version)
		return 0
	case "help", "-h", "-help", "--help":
		if len(args) > 0 && args[0] != "help" && !strings.HasPrefix(args[0], "-") {
			// `mohd help token` is `mohd token --help`.
			return mainErr([]string{args[0], "--help"}, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage())
		return 0
	case "install", "uninstall", "start", "stop", "status", "passwd":
		commonFlags(fs, &c)
	case "check":
		return checkCommand(fs, &c, args, stdout, stderr)
	case "token":
		return tokenCommand(fs, &c, args, stdout, stderr)
	case "grubenv":
		return grubenvCommand(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "mohd: unknown command %q\n\n%s", cmd, usage())
		return 2
	}
	if code, ok := parseCommand(fs, &c, args, stdout, stderr); !ok {
		return code
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
		err = passwdCommand(&c, stdin, stdout, stderr)
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
