package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/mohproject/moh/internal/check"
	"github.com/mohproject/moh/webui"
)

// passwdCommand is `mohd passwd`. At a terminal it asks twice without
// echoing; otherwise it reads one line from stdin (a script, `echo … |`).
// Never from a flag, where it would show in the process list.
func passwdCommand(c *config, stdin io.Reader, stdout, stderr io.Writer) error {
	var pw string
	var err error
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pw, err = askPassword(f, stderr, c)
	} else {
		pw, err = readPasswordLine(stdin)
	}
	if err != nil {
		return fmt.Errorf("passwd: %w", err)
	}
	if err := webui.CheckPasswordPolicy(pw, "", boxNames(c)...); err != nil {
		return fmt.Errorf("passwd: %w; nothing changed", err)
	}
	// Run as root, SetPassword gives the new file to the data dir's owner
	// before renaming it into place, so the service can read it at once.
	if err := webui.SetPassword(c.Data, pw); err != nil {
		return fmt.Errorf("passwd: %w", err)
	}
	fmt.Fprintln(stdout, "admin password set")
	return nil
}

func readPasswordLine(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("read the password from stdin, e.g. `read -rs P && echo \"$P\" | mohd passwd`")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// askPassword prompts on stderr (stdout may be a log) and reads from the
// terminal with echo off. The policy is checked before the confirmation,
// so a refused password is not typed twice.
func askPassword(tty *os.File, prompt io.Writer, c *config) (string, error) {
	read := func(label string) (string, error) {
		fmt.Fprint(prompt, label)
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(prompt) // the Enter the terminal did not echo
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		return string(b), nil
	}
	pw, err := read("New admin password: ")
	if err != nil {
		return "", err
	}
	if err := webui.CheckPasswordPolicy(pw, "", boxNames(c)...); err != nil {
		return "", fmt.Errorf("%w; nothing changed", err)
	}
	again, err := read("Repeat it: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the two passwords differ; nothing changed")
	}
	return pw, nil
}

// boxNames are the names a guesser knows of this box: its host name and
// its fleet id (read, never created here).
func boxNames(c *config) []string {
	var names []string
	if h, err := os.Hostname(); err == nil {
		names = append(names, h)
	}
	if c.DeviceID != "" {
		names = append(names, c.DeviceID)
	} else if b, err := os.ReadFile(filepath.Join(c.Data, deviceIDFile)); err == nil {
		names = append(names, strings.TrimSpace(string(b)))
	}
	return names
}

// tokenCommand is `mohd token create|list|revoke`.
func tokenCommand(fs *flag.FlagSet, c *config, args []string, stdout, stderr io.Writer) int {
	commonFlags(fs, c)
	scope := fs.String("scope", "", "token scope: read, operate or admin (create)")
	name := fs.String("name", "", "a name to recognise the token by (create)")
	misuse := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mohd token: "+format+"\n\n", a...)
		printUsage(stderr, fs)
		return 2
	}
	if len(args) == 0 {
		return misuse("say create, list or revoke")
	}
	verb, args := args[0], args[1:]
	switch verb {
	case "-h", "-help", "--help", "help":
		printUsage(stdout, fs)
		return 0
	case "create", "list", "revoke":
	default:
		if strings.HasPrefix(verb, "-") {
			return misuse("say create, list or revoke before the flags")
		}
		return misuse("unknown verb %q (create, list, revoke)", verb)
	}
	var id string
	if verb == "revoke" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if code, ok := parseCommand(fs, c, args, stdout, stderr); !ok {
		return code
	}
	var err error
	switch verb {
	case "create":
		if *scope == "" {
			return misuse("--scope is required: read, operate or admin")
		}
		var tok string
		var info webui.TokenInfo
		// Under the same lock as the daemon's token writes; run as root,
		// every file it leaves has the data dir's owner (webui.CreateToken).
		tok, info, err = webui.CreateToken(c.Data, *scope, *name)
		if err == nil {
			fmt.Fprintf(stderr, "created token %s (scope %s); it is shown only once:\n", info.ID, info.Scope)
			fmt.Fprintln(stdout, tok)
		}
	case "list":
		var list []webui.TokenInfo
		list, err = webui.ListTokens(c.Data)
		if err == nil {
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSCOPE\tNAME\tCREATED")
			for _, t := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Scope, t.Name, t.Created.Format(time.RFC3339))
			}
			tw.Flush()
		}
	case "revoke":
		if id == "" {
			return misuse("revoke needs the token's ID (see mohd token list)")
		}
		if err = webui.RevokeToken(c.Data, id); err == nil {
			fmt.Fprintln(stdout, "revoked", id)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "mohd token:", err)
		return 1
	}
	return 0
}

// checkCommand is `mohd check`, a Nagios/NRPE plugin. Bad usage exits 3
// (UNKNOWN), as plugins must.
func checkCommand(fs *flag.FlagSet, c *config, args []string, stdout, stderr io.Writer) int {
	commonFlags(fs, c)
	var o check.Options
	fs.Float64Var(&o.DiskWarnPct, "disk-warn", 15, "WARNING below this % of free disk")
	fs.Float64Var(&o.DiskCritPct, "disk-crit", 5, "CRITICAL below this % of free disk")
	fs.DurationVar(&o.RecentFault, "recent-fault", 15*time.Minute, "a watchdog fault this recent is a WARNING")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "give up after this long (UNKNOWN)")
	url := fs.String("url", "", "base URL of mohd (default: from --listen)")
	caFile := fs.String("cacert", "", "with --url https://…: trust the CA certificates in this PEM file")
	pin := fs.String("pin-sha256", "", "with --url https://…: trust exactly the certificate with this SHA-256 fingerprint (the box's self-signed one)")
	// --help is a person asking: usage on stdout, exit 0. Any other
	// mistake is the plugin's UNKNOWN, on stdout where Nagios reads it.
	err := parseFlags(fs, c, args)
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout, fs)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stdout, "MOH UNKNOWN -", err)
		printUsage(stderr, fs)
		return check.Unknown
	case err != nil:
		fmt.Fprintln(stdout, "MOH UNKNOWN -", err)
		return check.Unknown
	}
	o.URL = *url
	tlsOn := c.TLS != "" || c.TLSCert != ""
	if o.URL == "" {
		o.URL = localURL(c.Listen, tlsOn)
	}
	if o.Client, err = check.TLSClient(*caFile, *pin); err != nil {
		fmt.Fprintln(stdout, "MOH UNKNOWN -", err)
		return check.Unknown
	}
	if tlsOn && *url == "" && o.Client == nil {
		// The check asks its own box over loopback, whose certificate is
		// often the self-signed one: there is no one in between to trust.
		o.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	}
	return check.Run(context.Background(), o, stdout)
}

// localURL turns a listen address into the URL a local client uses.
func localURL(listen string, tls bool) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		host, port = "127.0.0.1", "8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
