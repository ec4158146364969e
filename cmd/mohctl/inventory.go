package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/internal/atomicfile"
)

// Inventory is the operator's list of boxes, a JSON file (see README):
//
//	{
//	  "ca_file": "company-ca.pem",
//	  "boxes": [
//	    {"name": "paris-1", "url": "https://10.1.2.3:8443",
//	     "token": "moh_…", "token_id": "a1b2c3d4e5f6",
//	     "groups": ["paris", "floor-2"], "device": "paris-1"}
//	  ]
//	}
//
// ca_file (relative to the inventory) is trusted for the boxes' HTTPS
// certificates in addition to the system roots. device is the box's MQTT
// device id (its certificate CN) and defaults to name. token_id is the id
// of token, needed to revoke it on rotation; mohctl fills it in.
type Inventory struct {
	CAFile string `json:"ca_file,omitempty"`
	Boxes  []Box  `json:"boxes"`

	path string
}

// Box is one appliance.
type Box struct {
	Name    string   `json:"name"`
	URL     string   `json:"url"`
	Token   string   `json:"token,omitempty"`
	TokenID string   `json:"token_id,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	Device  string   `json:"device,omitempty"`
}

// DeviceID is the box's MQTT identity.
func (b Box) DeviceID() string {
	if b.Device != "" {
		return b.Device
	}
	return b.Name
}

// LoadInventory reads and checks path. Unknown fields are refused so a
// typo ("group" for "groups") does not silently address the wrong boxes.
func LoadInventory(path string) (*Inventory, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	var inv Inventory
	if err := dec.Decode(&inv); err != nil {
		return nil, fmt.Errorf("parse inventory %s: %w", path, err)
	}
	inv.path = path
	if err := inv.validate(); err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	return &inv, nil
}

func (inv *Inventory) validate() error {
	seen := map[string]bool{}
	devs := map[string]bool{}
	for i, b := range inv.Boxes {
		if b.Name == "" {
			return fmt.Errorf("box #%d has no name", i+1)
		}
		if seen[b.Name] {
			return fmt.Errorf("box name %q appears twice", b.Name)
		}
		seen[b.Name] = true
		if b.URL != "" && !strings.HasPrefix(b.URL, "http://") && !strings.HasPrefix(b.URL, "https://") {
			return fmt.Errorf("box %q: url %q must start with http:// or https://", b.Name, b.URL)
		}
		if err := fleet.ValidName(b.DeviceID()); err != nil {
			return fmt.Errorf("box %q: device id: %w", b.Name, err)
		}
		if devs[b.DeviceID()] {
			return fmt.Errorf("device id %q appears twice", b.DeviceID())
		}
		devs[b.DeviceID()] = true
		for _, g := range b.Groups {
			if err := fleet.ValidName(g); err != nil {
				return fmt.Errorf("box %q: group: %w", b.Name, err)
			}
		}
	}
	return nil
}

// Select returns the boxes in group (all boxes if group is empty), in
// inventory order. An unknown group is an error, not zero boxes: an
// operator who mistypes a group must not see "all done".
func (inv *Inventory) Select(group string) ([]Box, error) {
	if group == "" {
		return slices.Clone(inv.Boxes), nil
	}
	var out []Box
	for _, b := range inv.Boxes {
		if slices.Contains(b.Groups, group) || b.Name == group {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no box in group %q", group)
	}
	return out, nil
}

// CAPath resolves ca_file relative to the inventory.
func (inv *Inventory) CAPath() string {
	if inv.CAFile == "" || filepath.IsAbs(inv.CAFile) {
		return inv.CAFile
	}
	return filepath.Join(filepath.Dir(inv.path), inv.CAFile)
}

// Save writes the inventory back atomically, readable by its owner only
// (it holds API tokens).
func (inv *Inventory) Save() error {
	if inv.path == "" {
		return errors.New("inventory has no path")
	}
	return atomicfile.WriteJSON(inv.path, inv, 0o600)
}
