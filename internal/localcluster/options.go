package localcluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubeparts/kubeparts/cloud"
	"github.com/kubeparts/kubeparts/internal/controllernames"
)

// The roles a kubeparts piece can take over (DESIGN.md §2).
const (
	RoleControllerManager = "controller-manager"
	RoleScheduler         = "scheduler"
	RoleAPIServer         = "apiserver"
	RoleNodeAgent         = "nodeagent"
	RoleProxy             = "proxy"
	RoleCloud             = "cloud-controller-manager"
)

// Roles lists every role in start order.
var Roles = []string{RoleControllerManager, RoleScheduler, RoleAPIServer, RoleNodeAgent, RoleProxy, RoleCloud}

// piece says, for one role, which kubeparts binary would take it over and whether it can
// yet. Until a piece is implemented `up` runs the stock one and says so.
type piece struct {
	binary      string // kubeparts binary
	stock       string // stock binary, "" when the stock piece is not part of the toolchain
	implemented bool
}

var pieces = map[string]piece{
	RoleControllerManager: {binary: "kubeparts-controller-manager", stock: "kube-controller-manager", implemented: true},
	RoleScheduler:         {binary: "kubeparts-scheduler", stock: "kube-scheduler", implemented: true},
	// The stock piece of the API-extension role is metrics-server, which is not built by
	// hack/upstream (its module pins other Kubernetes libraries): with --stock=apiserver
	// metrics.k8s.io is simply not served.
	RoleAPIServer: {binary: "kubeparts-apiserver", implemented: true},
	RoleNodeAgent: {binary: "kubeparts-nodeagent", stock: "kubelet", implemented: true},
	RoleProxy:     {binary: "kubeparts-proxy", stock: "kube-proxy", implemented: true},
	// No stock cloud-controller-manager knows a local machine as its cloud:
	// --stock=cloud-controller-manager runs none, as a cluster without a
	// cloud provider (nodes untainted, LoadBalancer Services pending).
	RoleCloud: {binary: "kubeparts-cloud-controller-manager", implemented: true},
}

// Options configure a local cluster.
type Options struct {
	// DataDir holds everything the cluster keeps: PKI, etcd data, node state, logs.
	DataDir string
	// BinDir holds the kubeparts and stock binaries.
	BinDir string
	// PortBase is the first of the PortCount consecutive ports the cluster listens on.
	PortBase int
	// Stock lists roles that run the stock binary even where a kubeparts piece exists.
	Stock []string
	// Fresh wipes the data dir before starting.
	Fresh bool
	// NodeName names the node; the machine's host name when empty.
	NodeName string
	// Nodes is how many nodes run (1 when 0): the first on the host as NodeName, each
	// other one as NodeName-workerN in a network namespace of its own.
	Nodes int
	// ControlPlanes is how many control-plane hosts run (1 when 0: the machine itself).
	// More than one makes the HA topology: each host in a namespace of its own,
	// HAProxy in front.
	ControlPlanes int
	// Etcd is the etcd topology: EtcdStacked (default) or EtcdExternal.
	Etcd string
	// EtcdMembers is how many etcd members run (stacked: one per control-plane host;
	// external: 3 when 0).
	EtcdMembers int
	// NodeAgentArgs are appended to every kubeparts-nodeagent's flags (a later
	// flag wins: tests set eviction thresholds this way).
	NodeAgentArgs []string
	// ProxyArgs are appended to every kubeparts-proxy's flags.
	ProxyArgs []string
	// Zones spreads the nodes over these zones, round robin (the cloud
	// provider labels each node with its zone; empty: no zone).
	Zones []string
	// LoadBalancerCIDR is the pool of LoadBalancer addresses (empty: one
	// derived from the data dir).
	LoadBalancerCIDR string
	// ReadyTimeout bounds the wait for /readyz and Ready nodes.
	ReadyTimeout time.Duration
	// Out receives the progress lines; os.Stdout when nil.
	Out io.Writer
}

// DefaultPortBase puts kube-apiserver on 16443, clear of the ports a stock cluster uses.
const DefaultPortBase = 16443

// PortCount is how many ports from PortBase a cluster reserves.
const PortCount = 15

// Ports are the listening ports of one cluster, all derived from Options.PortBase.
type Ports struct {
	APIServer, EtcdClient, EtcdPeer, EtcdMetrics                  int
	ControllerManager, Scheduler, Kubelet, KubeletHealthz, Stream int
	KubepartsAPIServer                                            int
	// kubeparts-controller-manager's secure /metrics and plain /healthz, /readyz.
	KubepartsCMMetrics, KubepartsCMHealth int
	// The proxy's /healthz, /livez and its /metrics (kube-proxy's 10256 and
	// 10249 would collide between two clusters on one machine).
	ProxyHealthz, ProxyMetrics int
	// kubeparts-cloud-controller-manager's secure port (/healthz, /metrics).
	CloudControllerManager int
}

func portsFrom(base int) Ports {
	return Ports{
		APIServer: base, EtcdClient: base + 1, EtcdPeer: base + 2, EtcdMetrics: base + 3,
		ControllerManager: base + 4, Scheduler: base + 5, Kubelet: base + 6, KubeletHealthz: base + 7,
		Stream: base + 8, KubepartsAPIServer: base + 9, KubepartsCMMetrics: base + 10, KubepartsCMHealth: base + 11,
		ProxyHealthz: base + 12, ProxyMetrics: base + 13, CloudControllerManager: base + 14,
	}
}

// Layout is where a cluster keeps its files.
type Layout struct {
	DataDir, PKI, Etcd, Logs, Kubeconfigs, Node string
	// RunDir holds sockets and runtime state under /run: unix socket paths must stay
	// under 108 bytes whatever the data dir's path is.
	RunDir string
	// CgroupRoot is the cgroup (in every hierarchy) the node's pods live under.
	CgroupRoot string
	// AdminKubeconfig is what users export as KUBECONFIG.
	AdminKubeconfig string
	// ServiceCIDR is the cluster's ClusterIP range and ClusterCIDR the range
	// its pod CIDRs come from; both derive from the data dir like everything
	// else, so two clusters' Services never collide on one machine.
	ServiceCIDR, ClusterCIDR *net.IPNet
	// ProxyTable is the nftables table of the host's node proxy.
	ProxyTable string
	// Cloud holds the cloud provider's inventory and configuration; its
	// load balancers' addresses come from LoadBalancerCIDR, live on the
	// dummy interface LoadBalancerInterface and are forwarded by the
	// nftables table LoadBalancerTable.
	Cloud, LoadBalancerInterface, LoadBalancerTable string
	LoadBalancerCIDR                                *net.IPNet
	// ID names the cluster on the machine (derived from the data dir): the
	// cloud's cluster name and part of every machine-wide name above.
	ID string
}

func layoutFor(dataDir string) Layout {
	sum := sha256.Sum256([]byte(dataDir))
	id := hex.EncodeToString(sum[:4])
	// Services take a /16 from 10.100.0.0 to 10.199.0.0; pod CIDRs live in
	// 10.200.0.0 to 10.249.0.0 (nodeSpecs), transit links in 100.64.0.0/10.
	_, services, _ := net.ParseCIDR(fmt.Sprintf("10.%d.0.0/16", 100+int(sum[8])%100))
	_, pods, _ := net.ParseCIDR(fmt.Sprintf("10.%d.0.0/16", podOctet(sum)))
	// Load balancers: a /24 of 172.16.0.0/12, clear of the other ranges.
	_, lbs, _ := net.ParseCIDR(fmt.Sprintf("172.%d.%d.0/24", 16+int(sum[9])%16, sum[10]))
	return Layout{
		ID:                    id,
		Cloud:                 filepath.Join(dataDir, "cloud"),
		LoadBalancerCIDR:      lbs,
		LoadBalancerInterface: "kp" + id + "lb",
		LoadBalancerTable:     "kubeparts-lb-" + id,
		ServiceCIDR:           services,
		ClusterCIDR:           pods,
		ProxyTable:            "kubeparts-proxy-" + id,
		DataDir:               dataDir,
		PKI:                   filepath.Join(dataDir, "pki"),
		Etcd:                  filepath.Join(dataDir, "etcd"),
		Logs:                  filepath.Join(dataDir, "logs"),
		Kubeconfigs:           filepath.Join(dataDir, "kubeconfigs"),
		Node:                  filepath.Join(dataDir, "node"),
		RunDir:                filepath.Join("/run/kubeparts", id),
		CgroupRoot:            "/kubeparts-" + id,
		AdminKubeconfig:       filepath.Join(dataDir, "admin.kubeconfig"),
	}
}

// LayoutFor returns the layout of the cluster kept in dataDir.
func LayoutFor(dataDir string) (Layout, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return Layout{}, err
	}
	return layoutFor(abs), nil
}

// plan is the validated form of Options.
type plan struct {
	Options
	layout Layout
	ports  Ports
	hostIP net.IP
	// nodes[0] is the host's node; the others are the workers of --nodes.
	nodes []nodeSpec
	// topo is where etcd, kube-apiserver and the controllers run.
	topo     topology
	binaries map[string]string // name -> path
	// runKubeparts says per role whether the kubeparts piece runs; stockRuns whether the
	// stock piece runs (both may, for the controller manager).
	runKubeparts map[string]bool
	notes        []string
}

func newPlan(o Options) (*plan, error) {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 3 * time.Minute
	}
	if o.DataDir == "" {
		return nil, fmt.Errorf("--data-dir is empty")
	}
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, err
	}
	o.DataDir = abs
	if err := validateTopology(&o); err != nil {
		return nil, err
	}
	if o.PortBase < 1024 || o.PortBase+PortCount > 65535 {
		return nil, fmt.Errorf("--port-base %d out of range: need 1024..%d", o.PortBase, 65535-PortCount)
	}
	for _, r := range o.Stock {
		if !slices.Contains(Roles, r) {
			return nil, fmt.Errorf("unknown role %q in --stock (roles: %s)", r, strings.Join(Roles, ", "))
		}
	}
	if o.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("node name: %w", err)
		}
		o.NodeName = strings.ToLower(h)
	}
	if errs := validation.IsDNS1123Subdomain(o.NodeName); len(errs) > 0 {
		return nil, fmt.Errorf("node name %q is not valid: %s (set --node-name)", o.NodeName, strings.Join(errs, "; "))
	}
	if o.BinDir == "" {
		return nil, fmt.Errorf("--bin-dir is empty")
	}
	if o.BinDir, err = filepath.Abs(o.BinDir); err != nil {
		return nil, err
	}
	p := &plan{Options: o, layout: layoutFor(abs), ports: portsFrom(o.PortBase), binaries: map[string]string{}, runKubeparts: map[string]bool{}}
	p.hostIP = hostIP()
	if p.Nodes == 0 {
		p.Nodes = 1
	}
	o = p.Options
	if o.Nodes < 1 || o.Nodes > MaxNodes {
		return nil, fmt.Errorf("--nodes %d out of range: 1..%d (for more nodes use kubeparts-nodeagent --runtime=simulated --simulate-nodes=N)", o.Nodes, MaxNodes)
	}
	if o.Nodes > 1 && slices.Contains(o.Stock, RoleNodeAgent) {
		return nil, fmt.Errorf("--nodes %d needs kubeparts-nodeagent: the stock kubelet runs only as the host's single node here (drop --stock=nodeagent)", o.Nodes)
	}
	if o.Nodes > 1 && p.hostIP.IsLoopback() {
		return nil, fmt.Errorf("--nodes %d: the machine has no non-loopback IPv4 address for the workers to reach kube-apiserver at", o.Nodes)
	}
	for _, z := range o.Zones {
		if errs := validation.IsValidLabelValue(z); z == "" || len(errs) > 0 {
			return nil, fmt.Errorf("--zones: %q is not a valid zone name (a label value): %s", z, strings.Join(errs, "; "))
		}
	}
	if o.LoadBalancerCIDR != "" {
		if _, err := cloud.ParsePool(o.LoadBalancerCIDR); err != nil {
			return nil, fmt.Errorf("--load-balancer-cidr %q: %w", o.LoadBalancerCIDR, err)
		}
		_, p.layout.LoadBalancerCIDR, _ = net.ParseCIDR(o.LoadBalancerCIDR)
	}
	if (o.ControlPlanes > 1 || o.Etcd == EtcdExternal) && p.hostIP.IsLoopback() {
		return nil, fmt.Errorf("--control-planes %d --etcd=%s: the machine has no non-loopback IPv4 address for the load balancer to serve at", o.ControlPlanes, o.Etcd)
	}
	p.nodes = nodeSpecs(p.layout, p.Options, p.hostIP)
	p.topo = topologyFor(p.layout, p.Options, p.hostIP)
	for _, h := range p.topo.hosts() {
		if errs := validation.IsDNS1123Label(h.name); len(errs) > 0 {
			return nil, fmt.Errorf("host name %q is not valid: %s (set a shorter --node-name)", h.name, strings.Join(errs, "; "))
		}
	}
	for _, n := range p.nodes[1:] {
		if errs := validation.IsDNS1123Subdomain(n.name); len(errs) > 0 {
			return nil, fmt.Errorf("worker name %q is not valid: %s (set a shorter --node-name)", n.name, strings.Join(errs, "; "))
		}
	}

	need := []string{"etcd", "kube-apiserver"}
	for _, role := range Roles {
		pc := pieces[role]
		wantStock := slices.Contains(o.Stock, role)
		switch {
		case pc.implemented && !wantStock:
			p.runKubeparts[role] = true
			need = append(need, pc.binary)
			if role == RoleControllerManager {
				need = append(need, pc.stock) // the rest of the stock controllers
				p.notes = append(p.notes, fmt.Sprintf("%s: %s runs %s; stock %s runs the rest", role, pc.binary,
					strings.Join(controllernames.StockNames(), ", "), pc.stock))
			}
		case pc.stock == "" && pc.implemented:
			p.notes = append(p.notes, fmt.Sprintf("%s: no stock piece exists for a local machine; the role is left empty", role))
		case pc.stock == "":
			p.notes = append(p.notes, fmt.Sprintf("%s: %s is not implemented yet and no stock piece is built here; the role is left empty", role, pc.binary))
		default:
			if !pc.implemented {
				p.notes = append(p.notes, fmt.Sprintf("%s: %s is not implemented yet, running stock %s", role, pc.binary, pc.stock))
			}
			need = append(need, pc.stock)
		}
	}
	if p.runsNode() {
		// coredns: cluster DNS runs as pods, from an image built of bin/coredns.
		need = append(need, "pause", "coredns")
	}
	var missing []string
	for _, name := range need {
		path := filepath.Join(o.BinDir, name)
		if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, name)
			continue
		}
		p.binaries[name] = path
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing binaries in %s: %s (run `make build upstream`)", o.BinDir, strings.Join(missing, ", "))
	}
	if p.runsNode() {
		// nft: both proxies program nftables through it.
		tools := []string{"containerd", "ctr", "runc", "nft"}
		if len(p.nodes) > 1 || p.topo.ha() {
			tools = append(tools, "ip", "nsenter")
		}
		if p.topo.ha() {
			tools = append(tools, "haproxy", "unshare")
		}
		for _, tool := range tools {
			path, err := lookPath(tool)
			if err != nil {
				return nil, fmt.Errorf("%s not found: the node needs Debian's containerd, runc, containernetworking-plugins, iproute2 and nftables, an HA control plane haproxy (run `make deps` as root)", tool)
			}
			p.binaries[tool] = path
		}
		if _, err := os.Stat(filepath.Join(cniBinDir, "bridge")); err != nil {
			return nil, fmt.Errorf("CNI plugins not found in %s (run `make deps` as root: containernetworking-plugins)", cniBinDir)
		}
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("the node (containerd and its node agent) needs root")
		}
	}
	return p, nil
}

// runsNode reports whether the cluster has a node. Every role set has one today; the
// method marks the places a control-plane-only cluster would skip.
func (p *plan) runsNode() bool { return true }

// hostIP is the address of the interface holding the default route: kube-apiserver
// advertises it (the kubernetes Service's endpoints may not be loopback) and the node
// reports it as its InternalIP. It reads the routing table; nothing is sent.
func hostIP() net.IP {
	candidates := []string{}
	if data, err := os.ReadFile("/proc/net/route"); err == nil {
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 2 && f[1] == "00000000" {
				candidates = append(candidates, f[0])
			}
		}
	}
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp != 0 && ifc.Flags&net.FlagLoopback == 0 && !slices.Contains(candidates, ifc.Name) {
			candidates = append(candidates, ifc.Name)
		}
	}
	for _, name := range candidates {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.To4()
			}
		}
	}
	return net.IPv4(127, 0, 0, 1).To4()
}
