// Package controlplane computes the controlplane.kubeparts.dev view on every
// read: Components (which implementation of each control-plane piece runs,
// its leader from its Lease, its health from /readyz) and EtcdMembers (from
// etcd's member list and status, when etcd credentials are given). Nothing is
// stored or cached between requests beyond the informers' view of Leases and
// Nodes, so what `kubectl get components` prints is current.
package controlplane

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Options are the flags of the control-plane view.
type Options struct {
	// Endpoints are --control-plane-component values: role=binary@readyz-url.
	Endpoints []string
	// Etcd client settings, named as kube-apiserver's.
	EtcdServers                       []string
	EtcdCAFile, EtcdCertFile, EtcdKey string
	// ProbeTimeout bounds each health probe.
	ProbeTimeout time.Duration
	// RestartsFile is the supervisor's count of restarts per process (kubeparts up's
	// restarts.json: {"<binary>[-<host>]": n}).
	RestartsFile string
}

// AddFlags registers the flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&o.Endpoints, "control-plane-component", o.Endpoints,
		"a control-plane component to report, as role=binary@https://host:port/readyz, or role=binary/instance@URL for one of several copies (instance: the host's name, with which its leader-election identity starts); repeatable. Roles: controller-manager, scheduler, node-agent, etcd, apiserver, api-extension, cloud-controller-manager. Components holding their usual Leases are found without it, but their health is then Unknown; kubeparts-apiserver reports itself, and lists its copies when they are given as api-extension=kubeparts-apiserver/<host>@URL")
	fs.StringSliceVar(&o.EtcdServers, "etcd-servers", o.EtcdServers, "etcd client URLs, to report EtcdMembers and etcd health")
	fs.StringVar(&o.EtcdCAFile, "etcd-cafile", o.EtcdCAFile, "CA of etcd's client certificates")
	fs.StringVar(&o.EtcdCertFile, "etcd-certfile", o.EtcdCertFile, "client certificate for etcd")
	fs.StringVar(&o.EtcdKey, "etcd-keyfile", o.EtcdKey, "key of --etcd-certfile")
	if o.ProbeTimeout == 0 {
		o.ProbeTimeout = 3 * time.Second
	}
	fs.StringVar(&o.RestartsFile, "restarts-file", o.RestartsFile, "a JSON map of process name (binary, or binary-host for a copy on a host) to how often its supervisor restarted it, as kubeparts up writes it; the components view shows the counts")
	fs.DurationVar(&o.ProbeTimeout, "control-plane-probe-timeout", o.ProbeTimeout, "timeout of each health probe of a component")
}

// endpoint is one parsed --control-plane-component.
type endpoint struct {
	role, binary, url string
	// instance names the copy (its host, whose name starts the leader-election
	// identities it takes); the URL's host when the flag names none.
	instance string
}

var knownRoles = map[string]bool{"controller-manager": true, "scheduler": true, "node-agent": true, "etcd": true, "apiserver": true, "api-extension": true, "cloud-controller-manager": true}

func parseEndpoint(v string) (endpoint, error) {
	role, rest, ok := strings.Cut(v, "=")
	binary, raw, ok2 := strings.Cut(rest, "@")
	binary, instance, named := strings.Cut(binary, "/")
	if !ok || !ok2 || role == "" || binary == "" || (named && instance == "") {
		return endpoint{}, fmt.Errorf("--control-plane-component %q: want role=binary@https://host:port/readyz or role=binary/instance@https://host:port/readyz", v)
	}
	if !knownRoles[role] {
		return endpoint{}, fmt.Errorf("--control-plane-component %q: unknown role %q", v, role)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return endpoint{}, fmt.Errorf("--control-plane-component %q: %q is not an http(s) URL", v, raw)
	}
	if !named {
		instance = u.Hostname()
	}
	return endpoint{role: role, binary: binary, url: raw, instance: instance}, nil
}

// Validate reports bad flags.
func (o *Options) Validate() []error {
	var errs []error
	for _, v := range o.Endpoints {
		if _, err := parseEndpoint(v); err != nil {
			errs = append(errs, err)
		}
	}
	if len(o.EtcdServers) > 0 && (o.EtcdCertFile == "") != (o.EtcdKey == "") {
		errs = append(errs, fmt.Errorf("--etcd-certfile and --etcd-keyfile go together"))
	}
	if o.ProbeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--control-plane-probe-timeout must be positive"))
	}
	return errs
}
