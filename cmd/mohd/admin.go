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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mohproject/moh/internal/check"
	"github.com/mohproject/moh/webui"
)

// passwdCommand is `mohd passwd`: the admin password is read from stdin
// (one line), never from a flag where it would show in the process list.
func passwdCommand(c *config, stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return errors.New("passwd: read the password from stdin, e.g. `read -rs P && echo \"$P\" | mohd passwd`")
	}
	pw := strings.TrimRight(line, "\r\n")
	// Run as root, SetPassword gives the new file to the data dir's owner
	// before renaming it into place, so the service can read it at once.
	if err := webui.SetPassword(c.Data, pw); err != nil {
		return fmt.Errorf("passwd: %w", err)
	}
	fmt.Fprintln(stdout, "admin password set")
	return nil
}

// tokenCommand is `mohd token create|list|revoke`.
func tokenCommand(fs *flag.FlagSet, c *config, args []string, stdout, stderr io.Writer) int {
	commonFlags(fs, c)
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: mohd token create --scope read|operate|admin [--name N] | list | revoke ID")
		return 2
	}
	verb, args := args[0], args[1:]
	scope := fs.String("scope", "", "token scope: read, operate or admin")
	name := fs.String("name", "", "a name to recognise the token by")
	var id string
	if verb == "revoke" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := parseFlags(fs, c, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "mohd token:", err)
		return 2
	}
	if err := c.finish(); err != nil {
		fmt.Fprintln(stderr, "mohd token:", err)
		return 2
	}
	var err error
	switch verb {
	case "create":
		if *scope == "" {
			err = errors.New("--scope is required: read, operate or admin")
			break
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
			err = errors.New("usage: mohd token revoke ID")
			break
		}
		if err = webui.RevokeToken(c.Data, id); err == nil {
			fmt.Fprintln(stdout, "revoked", id)
		}
	default:
		fmt.Fprintf(stderr, "mohd token: unknown verb %q (create, list, revoke)\n", verb)
		return 2
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
	err := parseFlags(fs, c, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return check.Unknown
		}
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

// splitCommand splits a restart command line on spaces (no shell).
func splitCommand(s string) []string { return strings.Fields(s) }
