// Package controllernames lists the kube-controller-manager controllers that
// kubeparts-controller-manager implements, under their canonical names and the old short
// names kube-controller-manager still accepts, and resolves a --controllers value with
// the stock syntax. kubeparts-controller-manager uses it to choose what to run and
// `kubeparts up` to switch exactly those controllers off in the stock manager.
package controllernames

import (
	"fmt"
	"slices"
	"strings"
)

// Controller is one controller kubeparts implements.
type Controller struct {
	Name    string   // canonical, e.g. replicaset-controller
	Aliases []string // old short names, e.g. replicaset
	// KubepartsOnly marks a controller with no kube-controller-manager counterpart: it is
	// never switched off in the stock manager (which would reject the unknown name).
	KubepartsOnly bool
	// Client is the name the stock manager gives the controller's client: the end of
	// its user agent and, with --use-service-account-credentials, the kube-system
	// ServiceAccount whose stock system:controller:<Client> ClusterRole it acts under.
	Client string
}

// Implemented are the controllers kubeparts-controller-manager can run, all enabled by
// default (as they are in kube-controller-manager).
var Implemented = []Controller{
	{Name: "daemonset-controller", Aliases: []string{"daemonset"}, Client: "daemon-set-controller"},
	{Name: "deployment-controller", Aliases: []string{"deployment"}, Client: "deployment-controller"},
	{Name: "namespace-controller", Aliases: []string{"namespace"}, Client: "namespace-controller"},
	{Name: "node-lifecycle-controller", Aliases: []string{"nodelifecycle"}, Client: "node-controller"},
	// No stock role: config/rbac grants system:controller:podgroup-controller.
	{Name: "podgroup-controller", KubepartsOnly: true, Client: "podgroup-controller"},
	{Name: "replicaset-controller", Aliases: []string{"replicaset"}, Client: "replicaset-controller"},
	// New in 1.29: no old short name. Stock runs it on the node controller's client.
	{Name: "taint-eviction-controller", Client: "node-controller"},
}

// ClientName is the client (and ServiceAccount) name of the controller named name; the
// name itself for one that is not implemented.
func ClientName(name string) string {
	for _, c := range Implemented {
		if c.Name == name {
			return c.Client
		}
	}
	return name
}

// Names returns the canonical names of Implemented.
func Names() []string {
	out := make([]string, len(Implemented))
	for i, c := range Implemented {
		out[i] = c.Name
	}
	return out
}

// StockNames returns the canonical names of the implemented controllers that replace a
// kube-controller-manager one: what the stock manager must switch off.
func StockNames() []string {
	var out []string
	for _, c := range Implemented {
		if !c.KubepartsOnly {
			out = append(out, c.Name)
		}
	}
	return out
}

// stockOnly are kube-controller-manager controllers kubeparts does not implement (yet):
// naming one gets a precise error instead of "unknown".
var stockOnly = []string{
	"statefulset-controller", "job-controller", "cronjob-controller",
	"endpointslice-controller", "garbage-collector-controller", "serviceaccount-controller",
	"resourcequota-controller", "horizontal-pod-autoscaler-controller", "disruption-controller",
	"node-ipam-controller", "persistentvolume-binder-controller", "attach-detach-controller",
}

// Resolve turns a --controllers value into the canonical names to run, with the stock
// semantics: "name" enables, "-name" disables (and wins), "*" enables every controller
// that is on by default. Old short names are accepted wherever a name is.
func Resolve(flags []string) ([]string, error) {
	enabled, disabled := map[string]bool{}, map[string]bool{}
	star := false
	for _, raw := range flags {
		item := strings.TrimSpace(raw)
		if item == "" {
			continue
		}
		if item == "*" {
			star = true
			continue
		}
		neg := strings.HasPrefix(item, "-")
		name, err := canonical(strings.TrimPrefix(item, "-"))
		if err != nil {
			return nil, err
		}
		if neg {
			disabled[name] = true
		} else {
			enabled[name] = true
		}
	}
	var out []string
	for _, c := range Implemented {
		if disabled[c.Name] {
			continue
		}
		if enabled[c.Name] || star {
			out = append(out, c.Name)
		}
	}
	return out, nil
}

func canonical(name string) (string, error) {
	for _, c := range Implemented {
		if name == c.Name || slices.Contains(c.Aliases, name) {
			return c.Name, nil
		}
	}
	if slices.Contains(stockOnly, name) || slices.Contains(stockOnly, name+"-controller") {
		return "", fmt.Errorf("controller %q is not implemented by kubeparts-controller-manager yet; leave it to kube-controller-manager (implemented: %s)", name, strings.Join(Names(), ", "))
	}
	return "", fmt.Errorf("unknown controller %q in --controllers (implemented: %s)", name, strings.Join(Names(), ", "))
}
