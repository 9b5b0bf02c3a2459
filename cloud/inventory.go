package cloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Inventory is what the cloud knows about the cluster's hosts. `kubeparts
// up` writes it whenever its hosts change; the provider reads it on every
// question, so it never answers from a stale copy.
type Inventory struct {
	// Cluster names the cluster (the provider IDs carry it).
	Cluster string `json:"cluster"`
	Region  string `json:"region"`
	Hosts   []Host `json:"hosts"`
}

// Host is one machine of the cloud: a node's host.
type Host struct {
	// Name is the name of the Node that runs on it.
	Name       string `json:"name"`
	InternalIP string `json:"internalIP"`
	Zone       string `json:"zone,omitempty"`
	// InstanceType: kubeparts-machine for the machine itself, kubeparts-netns
	// for a network namespace.
	InstanceType string `json:"instanceType"`
	// NetNS is the host's network namespace under /run/netns ("" for the
	// machine itself). A namespace that is gone is a host that is off.
	NetNS string `json:"netns,omitempty"`
	// Stopped: the host exists but is not running.
	Stopped bool `json:"stopped,omitempty"`
}

// ReadInventory reads the inventory file at path.
func ReadInventory(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var inv Inventory
	if err := json.Unmarshal(data, &inv); err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	if inv.Cluster == "" {
		return nil, fmt.Errorf("inventory %s: no cluster name", path)
	}
	return &inv, nil
}

// WriteInventory replaces the inventory file at path at once (written
// aside, then renamed), so a reader never sees half of it.
func WriteInventory(path string, inv *Inventory) error {
	data, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// host finds the host of the Node named name.
func (inv *Inventory) host(name string) (*Host, bool) {
	for i := range inv.Hosts {
		if inv.Hosts[i].Name == name {
			return &inv.Hosts[i], true
		}
	}
	return nil, false
}

// running reports whether the host is up: not marked stopped, and its
// network namespace (if it has one) still there.
func (h *Host) running() bool {
	if h.Stopped {
		return false
	}
	if h.NetNS == "" {
		return true
	}
	_, err := os.Stat(filepath.Join("/run/netns", h.NetNS))
	return !errors.Is(err, os.ErrNotExist)
}
