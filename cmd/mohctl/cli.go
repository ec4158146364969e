package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mohproject/moh/fleet"
)

// grammar is mohctl's command line: the global flags, then one struct per
// command holding its arguments, flags and help. kong builds the parser
// and the usage text from it, so the help cannot drift from what parses.
type grammar struct {
	globals `embed:""`

	Status   statusCmd   `cmd:"" help:"One row per box: health, state, track, uptime, recoveries, disk, version. Exits 0 when every box is ok, 1 if any is a warning, 2 if any is critical or unreachable."`
	Push     pushCmd     `cmd:"" help:"Add a track to each box."`
	Remove   removeCmd   `cmd:"" help:"Remove a track (id or name) from each box."`
	Playlist playlistCmd `cmd:"" help:"Show each box's playlist, or set its order."`
	Volume   volumeCmd   `cmd:"" help:"Set the volume, 0..100."`
	Play     playCmd     `cmd:"" help:"Start playback."`
	Stop     stopCmd     `cmd:"" help:"Stop playback (callers hear silence)."`
	Next     nextCmd     `cmd:"" help:"Skip to the next track."`
	Schedule scheduleCmd `cmd:"" help:"Set the weekly schedule of each box (schedule.go)."`
	Override overrideCmd `cmd:"" help:"Play a track (or --playlist) now on each box, --until a time or until 'override clear'; reports when each box made it audible."`
	Token    tokenCmd    `cmd:"" help:"Manage the inventory's API tokens."`
	Cert     certCmd     `cmd:"" help:"Rotate the boxes' certificates (fleet or https): a new key made on each box, signed by the fleet CA, the old certificate revoked. Needs --via."`
	CA       caCmd       `cmd:"" name:"ca" help:"The fleet CA: init, sign box CSRs, revoke certificates (the broker's CRL)."`
	Exporter exporterCmd `cmd:"" help:"Serve Prometheus metrics for every box, from their status on the broker (needs --via); runs until stopped."`
	Update   updateCmd   `cmd:"" help:"Phased system update: install a signed RAUC bundle on the boxes in waves, each waiting for the last to come back healthy on the new version; stops after --halt-after failures or rollbacks. Prints device, from, to, result, reason; exits 1 if any box was not updated."`
	Check    checkCmd    `cmd:"" help:"Nagios plugin for one box, from its status on the broker (needs --via): the thresholds and perfdata of mohd check. Exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."`
	Version  versionCmd  `cmd:"" help:"Print mohctl's version."`
	Help     helpCmd     `cmd:"" hidden:"" help:"Show help (mohctl help COMMAND is mohctl COMMAND --help)."`
}

// globals are the flags every command takes, anywhere on the line.
type globals struct {
	Inventory string        `placeholder:"PATH" group:"global" help:"Inventory file (default: $MOHCTL_INVENTORY, else ./inventory.json)."`
	Timeout   time.Duration `placeholder:"D" group:"global" help:"Per-box timeout (default 10s; push 5m; remove, playlist set and token rotate 30s; status via the broker 5s; check 8s)."`
	Parallel  int           `placeholder:"N" default:"200" group:"global" help:"Boxes contacted at once (default ${default})."`
	Via       string        `placeholder:"URL" group:"global" help:"Go through the MQTT broker, e.g. mqtts://broker.example:8883."`
	CA        string        `name:"ca" placeholder:"FILE" group:"global" help:"With --via: the company CA that signed the broker's certificate."`
	Cert      string        `placeholder:"FILE" group:"global" help:"With --via: the operator's client certificate."`
	Key       string        `placeholder:"FILE" group:"global" help:"With --via: the operator's client key."`
	Output    string        `short:"o" enum:"table,json" default:"table" placeholder:"table|json" group:"global" help:"Output format: table or json."`
}

func (g globals) apply(c *cli) {
	c.inventory, c.timeout, c.parallel = g.Inventory, g.Timeout, g.Parallel
	c.via, c.ca, c.cert, c.key, c.output = g.Via, g.CA, g.Cert, g.Key, g.Output
}

// selection is the --group flag of every command that reaches boxes.
type selection struct {
	Group string `short:"g" placeholder:"G" help:"Only the boxes of this group (or the one box of this name)."`
}

// command is what every leaf of the grammar does once parsed.
type command interface {
	run(ctx context.Context, c *cli) (int, error)
}

// withBoxes runs fn on the selected boxes through the chosen transport.
func withBoxes(ctx context.Context, c *cli, s selection, fn func(t transport, boxes []Box) (int, error)) (int, error) {
	c.group = s.Group
	boxes, t, err := c.target(ctx)
	if err != nil {
		return exitFailed, err
	}
	defer t.close()
	return fn(t, boxes)
}

type statusCmd struct {
	selection `embed:""`
}

func (s *statusCmd) run(ctx context.Context, c *cli) (int, error) {
	return withBoxes(ctx, c, s.selection, func(t transport, boxes []Box) (int, error) {
		return c.status(ctx, t, boxes)
	})
}

type pushCmd struct {
	File      string `arg:"" placeholder:"FILE" help:"The MP3 to add."`
	URL       string `name:"url" placeholder:"URL" help:"With --via: the https URL the boxes download FILE from (mohctl sends its sha256)."`
	selection `embed:""`
}

func (p *pushCmd) run(ctx context.Context, c *cli) (int, error) {
	c.pushURL = p.URL
	if c.via != "" && !strings.HasPrefix(p.URL, "https://") {
		return exitUsage, fmt.Errorf("%w: push over --via needs --url https://… where the boxes can download %s", errUsage, filepath.Base(p.File))
	}
	return withBoxes(ctx, c, p.selection, func(t transport, boxes []Box) (int, error) {
		return c.push(ctx, t, boxes, p.File)
	})
}

type removeCmd struct {
	Track     string `arg:"" placeholder:"TRACK" help:"Track id or name."`
	selection `embed:""`
}

func (r *removeCmd) run(ctx context.Context, c *cli) (int, error) {
	return withBoxes(ctx, c, r.selection, func(t transport, boxes []Box) (int, error) {
		return c.remove(ctx, t, boxes, r.Track)
	})
}

type playlistCmd struct {
	selection `embed:""`

	Show playlistShowCmd `cmd:"" default:"1" help:"Show each box's playlist (what plain 'playlist' does)."`
	Set  playlistSetCmd  `cmd:"" help:"Put the named tracks first, in this order; the others keep theirs after them."`
}

// The two leaves of playlist hold only their arguments: playlistRun does
// both, with the playlist node's --group.
type playlistShowCmd struct{}

type playlistSetCmd struct {
	Track []string `arg:"" help:"Track ids or names."`
}

type volumeCmd struct {
	Level     string `arg:"" placeholder:"N" help:"0..100."`
	selection `embed:""`
}

func (v *volumeCmd) run(ctx context.Context, c *cli) (int, error) {
	n, err := strconv.Atoi(v.Level)
	if err != nil || n < 0 || n > 100 {
		return exitUsage, fmt.Errorf("%w: volume must be an integer from 0 to 100, not %q", errUsage, v.Level)
	}
	return withBoxes(ctx, c, v.selection, func(t transport, boxes []Box) (int, error) {
		return c.volume(ctx, t, boxes, n)
	})
}

type playCmd struct {
	selection `embed:""`
}
type stopCmd struct {
	selection `embed:""`
}
type nextCmd struct {
	selection `embed:""`
}

func (p *playCmd) run(ctx context.Context, c *cli) (int, error) {
	return playerVerb(ctx, c, p.selection, fleet.OpPlay)
}
func (s *stopCmd) run(ctx context.Context, c *cli) (int, error) {
	return playerVerb(ctx, c, s.selection, fleet.OpStop)
}
func (n *nextCmd) run(ctx context.Context, c *cli) (int, error) {
	return playerVerb(ctx, c, n.selection, fleet.OpNext)
}

func playerVerb(ctx context.Context, c *cli, s selection, verb string) (int, error) {
	return withBoxes(ctx, c, s, func(t transport, boxes []Box) (int, error) {
		return c.player(ctx, t, boxes, verb)
	})
}

type tokenCmd struct {
	Rotate tokenRotateCmd `cmd:"" help:"New token on each box, saved to the inventory, then the old one revoked (the answer to a leaked token). HTTP only."`
}

type tokenRotateCmd struct {
	Scope     string `placeholder:"S" help:"Scope of the new tokens: read, operate or admin (default: the old token's)."`
	selection `embed:""`
}

func (r *tokenRotateCmd) run(ctx context.Context, c *cli) (int, error) {
	c.scope = r.Scope
	if c.via != "" {
		return exitFailed, errors.New("token rotate works over HTTP only (MQTT uses certificates, not tokens)")
	}
	c.group = r.Group
	if err := c.load(); err != nil {
		return exitFailed, err
	}
	boxes, err := c.inv.Select(c.group)
	if err != nil {
		return exitFailed, err
	}
	return c.rotate(ctx, boxes)
}

type versionCmd struct{}

func (*versionCmd) run(ctx context.Context, c *cli) (int, error) {
	fmt.Fprintln(c.stdout, "mohctl", version)
	return exitOK, nil
}

type helpCmd struct {
	Command []string `arg:"" optional:"" placeholder:"COMMAND" help:"The command to explain."`
}

func (h *helpCmd) run(ctx context.Context, c *cli) (int, error) {
	var g grammar
	p, err := newParser(&g, c.stdout, c.stderr)
	if err != nil {
		return exitFailed, err
	}
	if _, err := p.parse(append(h.Command, "--help")); !errors.Is(err, errHelpShown) {
		return exitUsage, fmt.Errorf("%w: help: %v", errUsage, err)
	}
	return exitOK, nil
}

const description = `mohctl manages many moh boxes at once, over each box's HTTP API (the
inventory's URLs and tokens) or, with --via, through the MQTT broker the
boxes connect out to. Flags may come anywhere on the line. A command that
fails on any box exits 1 and says how many; bad usage exits 2.`

// parser wraps kong with mohctl's conventions: --help prints usage to
// stdout and exits 0; misuse prints the error and usage to stderr and
// exits 2.
type parser struct {
	k      *kong.Kong
	helped bool
	last   *kong.Context
}

// errHelpShown says usage was printed on request.
var errHelpShown = errors.New("help shown")

func newParser(g *grammar, stdout, stderr io.Writer) (*parser, error) {
	p := &parser{}
	k, err := kong.New(g,
		kong.Name("mohctl"),
		kong.Description(description),
		kong.Writers(stdout, stderr),
		// kong's --help prints the usage of the command it follows,
		// then calls this; parsing goes on, and parse ignores what
		// follows (a missing argument is no error after --help).
		kong.Exit(func(int) { p.helped = true }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.ExplicitGroups([]kong.Group{{Key: "global", Title: "Global flags (anywhere on the line):"}}),
	)
	if err != nil {
		return nil, fmt.Errorf("command line grammar: %w", err)
	}
	p.k = k
	return p, nil
}

// parse returns the selected command, errHelpShown, or a usage error.
func (p *parser) parse(args []string) (command, error) {
	kctx, err := p.k.Parse(args)
	if p.helped {
		return nil, errHelpShown
	}
	var pe *kong.ParseError
	if errors.As(err, &pe) {
		p.last = pe.Context
	}
	if err != nil {
		return nil, err
	}
	p.last = kctx
	return p.selected(kctx)
}

// selected maps the parsed path to the command to run. A command group
// (playlist) runs itself with its chosen child.
func (p *parser) selected(kctx *kong.Context) (command, error) {
	node := kctx.Selected()
	if node == nil {
		return nil, errors.New("no command given")
	}
	if pl, ok := node.Parent.Target.Addr().Interface().(*playlistCmd); ok {
		return playlistRun{pl, node.Name}, nil
	}
	cmd, ok := node.Target.Addr().Interface().(command)
	if !ok {
		return nil, fmt.Errorf("command %q has no action", node.Name)
	}
	return cmd, nil
}

// playlistRun is `playlist` (show) or `playlist set`: both take the
// group flag of the playlist node.
type playlistRun struct {
	pl   *playlistCmd
	verb string
}

func (r playlistRun) run(ctx context.Context, c *cli) (int, error) {
	return withBoxes(ctx, c, r.pl.selection, func(t transport, boxes []Box) (int, error) {
		if r.verb == "set" {
			return c.setPlaylist(ctx, t, boxes, r.pl.Set.Track)
		}
		return c.showPlaylist(ctx, t, boxes)
	})
}

// usageTo prints the usage of the command the error belongs to (or of
// mohctl) to w.
func (p *parser) usageTo(w io.Writer, _ error) {
	kctx := p.last
	if kctx == nil {
		var err error
		if kctx, err = kong.Trace(p.k, nil); err != nil {
			return
		}
	}
	saved := p.k.Stdout
	p.k.Stdout = w
	defer func() { p.k.Stdout = saved }()
	kctx.PrintUsage(false)
}
