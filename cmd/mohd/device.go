package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mohproject/moh/internal/atomicfile"
)

// deviceIDFile keeps the box's fleet identity across reboots.
const deviceIDFile = "device-id"

// deviceID is --device-id, else the id kept in the data dir, generated
// once on first start.
func deviceID(c *config) (string, error) {
	if c.DeviceID != "" {
		return c.DeviceID, nil
	}
	path := filepath.Join(c.Data, deviceIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read device id: %w", err)
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := "moh-" + hex.EncodeToString(r[:])
	if err := atomicfile.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("store device id: %w", err)
	}
	return id, nil
}
