package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/mohproject/moh/internal/grubenv"
)

// grubenvCommand is `mohd grubenv FILE list|set NAME=VALUE...|unset
// NAME...`, the grub-editenv that RAUC's grub backend runs on the
// appliance (the image installs a wrapper by that name). It answers as
// grub-editenv does ("NAME=VALUE" lines for list; an error on stderr and
// a non-zero exit), but rewrites the block in place, where GRUB's
// save_env writes it too, instead of replacing the file. Every set or
// unset of one call is applied together or, on an error, none is.
func grubenvCommand(args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprint(stdout, grubenvUsage())
			return 0
		}
	}
	if len(args) < 2 {
		fmt.Fprintf(stderr, "mohd grubenv: need FILE and a command\n\n%s", grubenvUsage())
		return 2
	}
	path, cmd, rest := args[0], args[1], args[2:]
	switch cmd {
	case "list", "set", "unset":
	default:
		fmt.Fprintf(stderr, "mohd grubenv: unknown command %q\n\n%s", cmd, grubenvUsage())
		return 2
	}
	if cmd == "list" && len(rest) > 0 {
		fmt.Fprintf(stderr, "mohd grubenv: list takes no arguments\n\n%s", grubenvUsage())
		return 2
	}
	if err := grubenvRun(path, cmd, rest, stdout); err != nil {
		fmt.Fprintln(stderr, "mohd grubenv:", err)
		return 1
	}
	return 0
}

// grubenvRun does one command. A missing file is created as
// grub-editenv creates it (grubenv.New), by list too.
func grubenvRun(path, cmd string, args []string, stdout io.Writer) error {
	e, err := grubenv.Read(path)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		e, created, err = grubenv.New(), true, nil
	}
	if err != nil {
		return err
	}
	switch cmd {
	case "list":
		if created {
			if err := grubenv.Write(path, e); err != nil {
				return err
			}
		}
		for _, v := range e.Vars() {
			fmt.Fprintf(stdout, "%s=%s\n", v.Name, v.Value)
		}
		return nil
	case "set":
		for _, a := range args {
			name, value, ok := strings.Cut(a, "=")
			if !ok {
				return fmt.Errorf("invalid parameter %s: want NAME=VALUE", a)
			}
			if err := e.Set(name, value); err != nil {
				return err
			}
		}
	case "unset":
		for _, name := range args {
			e.Unset(name)
		}
	}
	return grubenv.Write(path, e)
}

func grubenvUsage() string {
	for _, c := range commands {
		if c.name == "grubenv" {
			return fmt.Sprintf("usage: mohd grubenv %s\n\n%s.\n", c.args, c.help)
		}
	}
	return ""
}
