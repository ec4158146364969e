package main

import (
	"fmt"
	"os/exec"
	"os/user"
)

// ensureUser creates the unprivileged system account mohd runs as, in the
// audio group so it may open the sound card, and nothing else.
func ensureUser() error {
	if _, err := user.Lookup(serviceUser); err == nil {
		return nil
	}
	out, err := exec.Command("useradd", "--system", "--home-dir", defaultDataDir, "--no-create-home",
		"--shell", "/usr/sbin/nologin", "--groups", "audio", serviceUser).CombinedOutput()
	if err != nil {
		return fmt.Errorf("create user %s: %v: %s", serviceUser, err, out)
	}
	return nil
}
