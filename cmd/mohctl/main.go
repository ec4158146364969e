// Command mohctl manages a fleet of moh boxes at once: status of all of
// them in one table, pushing and removing tracks, playlist order, volume,
// play/stop and token rotation, over each box's HTTP API or, with --via,
// through the MQTT broker the boxes connect out to.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: mohctl [flags] COMMAND [args]

commands:
  status [--group G] [-o table|json]   one row per box
  push FILE [--group G] [--url URL]    add a track (--url: where the boxes fetch FILE, for --via)
  remove TRACK [--group G]             remove a track (id or name) from each box
  playlist [--group G]                 show each box's playlist
  playlist set TRACK... [--group G]    set the order (ids or names)
  volume N [--group G]                 set the volume, 0..100
  play | stop | next [--group G]       control playback
  token rotate [--group G] [--scope S] new token on each box, saved to the inventory, old one revoked

flags (anywhere on the line):
  --inventory PATH   inventory file (default $MOHCTL_INVENTORY or ./inventory.json)
  --timeout D        per-box timeout (default 10s; push: 5m)
  --parallel N       boxes contacted at once (default 200)
  --via URL          go through the MQTT broker, e.g. mqtts://broker.example:8883
  --ca, --cert, --key  the company CA and the operator's client certificate for --via
`

// exit codes
const (
	exitOK     = 0
	exitFailed = 1 // at least one box failed
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, now: time.Now, getenv: os.Getenv}
	os.Exit(c.run(ctx, os.Args[1:]))
}

// cli is one invocation; tests build it with their own writers and clock.
type cli struct {
	stdout, stderr io.Writer
	now            func() time.Time
	getenv         func(string) string
	// httpClient, if set, replaces the one built from the inventory.
	httpClient *http.Client

	// flags
	inventory   string
	timeout     time.Duration
	parallel    int
	via         string
	ca, cert    string
	key         string
	group       string
	output      string
	pushURL     string
	scope       string
	positionals []string

	inv *Inventory
}

var errUsage = errors.New("usage")

func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.inventory, "inventory", "", "")
	fs.DurationVar(&c.timeout, "timeout", 0, "")
	fs.IntVar(&c.parallel, "parallel", 200, "")
	fs.StringVar(&c.via, "via", "", "")
	fs.StringVar(&c.ca, "ca", "", "")
	fs.StringVar(&c.cert, "cert", "", "")
	fs.StringVar(&c.key, "key", "", "")
	fs.StringVar(&c.group, "group", "", "")
	fs.StringVar(&c.group, "g", "", "")
	fs.StringVar(&c.output, "o", "table", "")
	fs.StringVar(&c.pushURL, "url", "", "")
	fs.StringVar(&c.scope, "scope", "", "")
	return fs
}

// parse accepts flags before, between and after positional arguments
// (`mohctl push FILE --group G`), which the flag package alone does not.
func (c *cli) parse(args []string) error {
	fs := c.flags("mohctl")
	for {
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return nil
		}
		if args[0] == "--" {
			c.positionals = append(c.positionals, args[1:]...)
			return nil
		}
		c.positionals = append(c.positionals, args[0])
		args = args[1:]
	}
}

func (c *cli) run(ctx context.Context, args []string) int {
	if err := c.parse(args); err != nil {
		fmt.Fprintf(c.stderr, "mohctl: %v\n\n%s", err, usage)
		return exitUsage
	}
	if len(c.positionals) == 0 || c.positionals[0] == "help" {
		fmt.Fprint(c.stderr, usage)
		return exitUsage
	}
	code, err := c.dispatch(ctx, c.positionals[0], c.positionals[1:])
	if err != nil {
		fmt.Fprintf(c.stderr, "mohctl: %v\n", err)
		if errors.Is(err, errUsage) {
			fmt.Fprint(c.stderr, "\n"+usage)
			return exitUsage
		}
		if code == exitOK {
			code = exitFailed
		}
	}
	return code
}

func (c *cli) dispatch(ctx context.Context, cmd string, args []string) (int, error) {
	need := func(n int, what string) error {
		if len(args) != n {
			return fmt.Errorf("%w: %s takes %s", errUsage, cmd, what)
		}
		return nil
	}
	if c.output != "table" && c.output != "json" {
		return exitUsage, fmt.Errorf("%w: -o must be table or json", errUsage)
	}
	var err error
	switch cmd {
	case "status", "play", "stop", "next":
		err = need(0, "no arguments")
	case "push", "remove", "volume":
		err = need(1, "one argument")
	case "token":
		if len(args) != 1 || args[0] != "rotate" {
			err = fmt.Errorf("%w: only `token rotate` exists", errUsage)
		}
	case "playlist":
		if len(args) > 0 && (args[0] != "set" || len(args) < 2) {
			err = fmt.Errorf("%w: playlist [set TRACK...]", errUsage)
		}
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
	if err != nil {
		return exitUsage, err
	}
	if err := c.load(); err != nil {
		return exitFailed, err
	}
	boxes, err := c.inv.Select(c.group)
	if err != nil {
		return exitFailed, err
	}
	t, err := c.transport(ctx)
	if err != nil {
		return exitFailed, err
	}
	defer t.close()
	switch cmd {
	case "status":
		return c.status(ctx, t, boxes)
	case "play", "stop", "next":
		return c.player(ctx, t, boxes, cmd)
	case "volume":
		return c.volume(ctx, t, boxes, args[0])
	case "push":
		return c.push(ctx, t, boxes, args[0])
	case "remove":
		return c.remove(ctx, t, boxes, args[0])
	case "playlist":
		if len(args) == 0 {
			return c.showPlaylist(ctx, t, boxes)
		}
		return c.setPlaylist(ctx, t, boxes, args[1:])
	case "token":
		if c.via != "" {
			return exitFailed, errors.New("token rotate works over HTTP only (MQTT uses certificates, not tokens)")
		}
		return c.rotate(ctx, boxes)
	}
	return exitUsage, nil
}

func (c *cli) load() error {
	path := c.inventory
	if path == "" {
		path = c.getenv("MOHCTL_INVENTORY")
	}
	if path == "" {
		path = "inventory.json"
	}
	inv, err := LoadInventory(path)
	if err != nil {
		return err
	}
	c.inv = inv
	return nil
}

func (c *cli) transport(ctx context.Context) (transport, error) {
	if c.via != "" {
		return dialMQTT(ctx, c)
	}
	hc := c.httpClient
	if hc == nil {
		var err error
		if hc, err = httpClientFor(c.inv.CAPath()); err != nil {
			return nil, err
		}
	}
	return &httpTransport{hc: hc}, nil
}

// httpClientFor trusts the system roots plus the inventory's CA. Boxes are
// many distinct hosts, so connection reuse matters less than not keeping
// a thousand idle sockets.
func httpClientFor(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 1
	tr.MaxIdleConns = 0
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read inventory ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}, nil
}

func (c *cli) boxTimeout(def time.Duration) time.Duration {
	if c.timeout > 0 {
		return c.timeout
	}
	return def
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
