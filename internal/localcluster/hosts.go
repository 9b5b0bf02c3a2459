package localcluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// The etcd topologies of kubeadm's HA guide.
const (
	// EtcdStacked runs an etcd member on every control-plane host, beside its
	// kube-apiserver.
	EtcdStacked = "stacked"
	// EtcdExternal runs the etcd members on hosts of their own.
	EtcdExternal = "external"
)

// MaxControlPlanes and MaxEtcdMembers bound the HA topologies: every host runs on this
// one machine, and etcd's quorum gains nothing past seven members.
const (
	MaxControlPlanes = 7
	MaxEtcdMembers   = 7
)

// topology is where the control plane runs. The default is one control-plane host, the
// machine itself, with one etcd member: what `up` has always started, as fast as ever.
// An HA topology puts each control-plane host and each external etcd host in a network
// namespace (and UTS namespace) of its own, with its own address and certificates,
// behind HAProxy on the machine as the control-plane endpoint.
type topology struct {
	controlPlanes []netHost // kube-apiserver and the controllers run on each
	etcd          []netHost // etcd members: the control-plane hosts when stacked
	external      bool      // etcd on hosts of its own
}

// ha says whether the control plane is spread over hosts (and needs the load balancer).
func (t topology) ha() bool { return len(t.controlPlanes) > 1 || t.external }

// validateTopology checks --control-planes, --etcd and --etcd-members, filling defaults:
// stacked etcd has one member per control-plane host; external etcd has three unless
// told otherwise.
func validateTopology(o *Options) error {
	if o.ControlPlanes == 0 {
		o.ControlPlanes = 1
	}
	if o.Etcd == "" {
		o.Etcd = EtcdStacked
	}
	if o.ControlPlanes < 1 || o.ControlPlanes > MaxControlPlanes {
		return fmt.Errorf("--control-planes %d out of range: 1..%d", o.ControlPlanes, MaxControlPlanes)
	}
	switch o.Etcd {
	case EtcdStacked:
		if o.EtcdMembers != 0 && o.EtcdMembers != o.ControlPlanes {
			return fmt.Errorf("--etcd-members %d with --etcd=stacked: stacked etcd has one member per control-plane host (%d); use --etcd=external for a different count", o.EtcdMembers, o.ControlPlanes)
		}
		o.EtcdMembers = o.ControlPlanes
	case EtcdExternal:
		if o.EtcdMembers == 0 {
			o.EtcdMembers = 3
		}
	default:
		return fmt.Errorf("--etcd %q: want %s or %s", o.Etcd, EtcdStacked, EtcdExternal)
	}
	if o.EtcdMembers < 1 || o.EtcdMembers > MaxEtcdMembers {
		return fmt.Errorf("--etcd-members %d out of range: 1..%d", o.EtcdMembers, MaxEtcdMembers)
	}
	if o.EtcdMembers%2 == 0 {
		// An even count tolerates no more failures than one member fewer, and splits
		// evenly in a partition: etcd's own advice.
		if o.Etcd == EtcdStacked {
			return fmt.Errorf("--control-planes %d with stacked etcd makes %d etcd members: use an odd number (3 tolerates one failure, 5 two), or --etcd=external", o.ControlPlanes, o.EtcdMembers)
		}
		return fmt.Errorf("--etcd-members %d: use an odd number (3 tolerates one failure, 5 two)", o.EtcdMembers)
	}
	return nil
}

// topologyFor lays out the hosts of o (validated).
func topologyFor(l Layout, o Options, machine net.IP) topology {
	if o.ControlPlanes == 1 && o.Etcd == EtcdStacked {
		self := netHost{name: o.NodeName, ip: machine}
		return topology{controlPlanes: []netHost{self}, etcd: []netHost{self}}
	}
	var t topology
	uts := filepath.Join(l.RunDir, "uts")
	for i := 1; i <= o.ControlPlanes; i++ {
		h := namespacedHost(l, machine, o.NodeName+"-cp"+strconv.Itoa(i), "cp"+strconv.Itoa(i), "c"+strconv.Itoa(i), 40+i)
		h.uts = filepath.Join(uts, h.name)
		t.controlPlanes = append(t.controlPlanes, h)
	}
	if o.Etcd == EtcdStacked {
		t.etcd = t.controlPlanes
		return t
	}
	t.external = true
	for i := 1; i <= o.EtcdMembers; i++ {
		h := namespacedHost(l, machine, o.NodeName+"-etcd"+strconv.Itoa(i), "etcd"+strconv.Itoa(i), "e"+strconv.Itoa(i), 50+i)
		h.uts = filepath.Join(uts, h.name)
		t.etcd = append(t.etcd, h)
	}
	return t
}

// hosts lists every namespaced host of the topology once.
func (t topology) hosts() []netHost {
	seen := map[string]bool{}
	var out []netHost
	for _, h := range append(append([]netHost{}, t.controlPlanes...), t.etcd...) {
		if h.netns != "" && !seen[h.name] {
			seen[h.name] = true
			out = append(out, h)
		}
	}
	return out
}

// setupHost makes a control-plane or etcd host: its network namespace and link, and a
// UTS namespace whose host name is the host's, kept in a file under the run dir (as
// `ip netns` keeps network namespaces) so every component of the host enters it.
func (n netHost) setupHost(ip, nsenter, unshare string) error {
	// The UTS namespace first: setupNetwork already runs a command on the host.
	if n.uts != "" {
		if err := os.MkdirAll(filepath.Dir(n.uts), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(n.uts, nil, 0o644); err != nil {
			return err
		}
		if out, err := exec.Command(unshare, "--uts="+n.uts, "hostname", n.name).CombinedOutput(); err != nil {
			return fmt.Errorf("host %s: UTS namespace: %v: %s", n.name, err, strings.TrimSpace(string(out)))
		}
	}
	return n.setupNetwork(ip, nsenter, "")
}

// etcdName is the member name of an etcd host: "default" for the lone member of the
// default topology (what its data dir has always been initialized with).
func (t topology) etcdName(h netHost) string {
	if !t.ha() {
		return "default"
	}
	return h.name
}

// topologyFile records the topology of the cluster kept in a data dir.
func topologyFile(l Layout) string { return filepath.Join(l.DataDir, "topology") }

func (o Options) topologyLine() string {
	return fmt.Sprintf("--control-planes=%d --etcd=%s --etcd-members=%d", o.ControlPlanes, o.Etcd, o.EtcdMembers)
}

// checkTopology refuses to start a data dir's cluster in another topology than the one
// it was made with: its etcd data lives with the members of that topology, so another
// would start an empty cluster beside it (the data would look lost). A data dir from
// before topologies were recorded holds the default one.
func (p *plan) checkTopology() error {
	want := p.Options.topologyLine()
	data, err := os.ReadFile(topologyFile(p.layout))
	have := strings.TrimSpace(string(data))
	if os.IsNotExist(err) {
		have = ""
		if _, err := os.Stat(filepath.Join(p.layout.Etcd, "member")); err == nil {
			have = Options{ControlPlanes: 1, Etcd: EtcdStacked, EtcdMembers: 1}.topologyLine()
		}
	} else if err != nil {
		return err
	}
	// A recorded topology binds only once etcd holds data (a first start that failed
	// early made none).
	members, _ := filepath.Glob(filepath.Join(p.layout.Etcd+"*", "member"))
	if have != "" && have != want && len(members) > 0 {
		return fmt.Errorf("the cluster in %s was made with %s, not %s: start it that way, or add --fresh to make a new one (its data is deleted)", p.DataDir, have, want)
	}
	return os.WriteFile(topologyFile(p.layout), []byte(want+"\n"), 0o644)
}
