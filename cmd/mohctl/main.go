// Command mohctl manages a fleet of moh boxes at once: status of all of
// them in one table, pushing and removing tracks, playlist order, volume,
// play/stop and token rotation, over each box's HTTP API or, with --via,
// through the MQTT broker the boxes connect out to.
//
// The command line is declared in cli.go (one struct per command, its
// flags and help beside it); this file runs one invocation.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mohproject/moh/internal/capool"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

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

	// the global flags (globals in cli.go) and the command's own
	inventory string
	timeout   time.Duration
	parallel  int
	via       string
	ca, cert  string
	key       string
	output    string
	group     string
	pushURL   string
	scope     string

	inv *Inventory
}

// errUsage marks a mistake on the command line found after parsing (a
// value out of range, a flag that needs another): usage, exit 2.
var errUsage = errors.New("usage")

func (c *cli) run(ctx context.Context, args []string) int {
	var g grammar
	p, err := newParser(&g, c.stdout, c.stderr)
	if err != nil {
		fmt.Fprintf(c.stderr, "mohctl: %v\n", err)
		return exitFailed
	}
	cmd, err := p.parse(args)
	switch {
	case errors.Is(err, errHelpShown):
		return exitOK
	case err != nil:
		fmt.Fprintf(c.stderr, "mohctl: %v\n\n", err)
		p.usageTo(c.stderr, err)
		return exitUsage
	}
	g.globals.apply(c)
	code, err := cmd.run(ctx, c)
	if err != nil {
		fmt.Fprintf(c.stderr, "mohctl: %v\n", err)
		if errors.Is(err, errUsage) {
			fmt.Fprintln(c.stderr)
			p.usageTo(c.stderr, err)
			return exitUsage
		}
		if code == exitOK {
			code = exitFailed
		}
	}
	return code
}

// target is what every fleet command starts with: the inventory, the
// boxes selected by --group and a way to reach them.
func (c *cli) target(ctx context.Context) ([]Box, transport, error) {
	if err := c.load(); err != nil {
		return nil, nil, err
	}
	boxes, err := c.inv.Select(c.group)
	if err != nil {
		return nil, nil, err
	}
	t, err := c.transport(ctx)
	if err != nil {
		return nil, nil, err
	}
	return boxes, t, nil
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
		pool, err := capool.WithSystem(caFile)
		if err != nil {
			return nil, fmt.Errorf("inventory ca_file: %w", err)
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
