package localcluster

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeparts/kubeparts/internal/controllernames"
)

// fakeBinDir holds executable stand-ins for the binaries a plan looks for.
func fakeBinDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/true\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var allStock = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "pause", "kubeparts-controller-manager", "kubeparts-scheduler", "kubeparts-apiserver", "kubeparts-nodeagent", "kubeparts-proxy", "kube-proxy", "coredns", "kubeparts-cloud-controller-manager"}

func TestNewPlanRejectsBadInput(t *testing.T) {
	bins := fakeBinDir(t, allStock...)
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"unknown role", func(o *Options) { o.Stock = []string{"scheduler", "kube-proxy"} }, `unknown role "kube-proxy"`},
		{"port base too low", func(o *Options) { o.PortBase = 80 }, "--port-base 80 out of range"},
		{"port base too high", func(o *Options) { o.PortBase = 65530 }, "out of range"},
		{"node name with capitals", func(o *Options) { o.NodeName = "Node_1" }, `node name "Node_1" is not valid`},
		{"empty data dir", func(o *Options) { o.DataDir = "" }, "--data-dir is empty"},
		{"missing binaries", func(o *Options) { o.BinDir = fakeBinDir(t, "etcd") }, "missing binaries in"},
		{"negative nodes", func(o *Options) { o.Nodes = -1 }, "--nodes -1 out of range"},
		{"too many nodes", func(o *Options) { o.Nodes = MaxNodes + 1 }, "out of range"},
		{"workers with the stock kubelet", func(o *Options) { o.Nodes, o.Stock = 2, []string{"nodeagent"} }, "needs kubeparts-nodeagent"},
		{"bad zone", func(o *Options) { o.Zones = []string{"a", "b c"} }, `--zones: "b c" is not a valid zone name`},
		{"empty zone", func(o *Options) { o.Zones = []string{"a", ""} }, `--zones: "" is not a valid zone name`},
		{"load-balancer pool with host bits", func(o *Options) { o.LoadBalancerCIDR = "172.31.0.1/24" }, `--load-balancer-cidr "172.31.0.1/24": not a network address`},
		{"load-balancer pool too big", func(o *Options) { o.LoadBalancerCIDR = "10.0.0.0/8" }, "at most a /16"},
		// A valid 250-character node name leaves no room for "-worker1".
		{"worker names too long", func(o *Options) { o.Nodes, o.NodeName = 2, strings.Repeat(strings.Repeat("n", 61)+".", 4)+"nnnnn" }, `worker name "nnn`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{DataDir: t.TempDir(), BinDir: bins, PortBase: DefaultPortBase, NodeName: "node-1", Out: io.Discard}
			tc.mod(&o)
			_, err := newPlan(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMissingBinariesAreAllNamed(t *testing.T) {
	o := Options{DataDir: t.TempDir(), BinDir: fakeBinDir(t, "etcd", "kube-apiserver"), PortBase: DefaultPortBase, NodeName: "n", Out: io.Discard}
	_, err := newPlan(o)
	if err == nil {
		t.Fatal("plan accepted a bin dir without the controller manager, scheduler, node agent and pause")
	}
	for _, b := range []string{"kube-controller-manager", "kubeparts-scheduler", "kubeparts-nodeagent", "kubeparts-proxy", "coredns", "pause", "kubeparts-cloud-controller-manager"} {
		if !strings.Contains(err.Error(), b) {
			t.Errorf("error %q does not name %s", err, b)
		}
	}
}

// While no kubeparts piece is implemented every role falls back to stock, and each
// fallback is announced.
func TestPlanAnnouncesStockFallbacks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a plan with a node needs root")
	}
	p, err := newPlan(Options{DataDir: t.TempDir(), BinDir: fakeBinDir(t, allStock...), PortBase: DefaultPortBase, NodeName: "n", Out: io.Discard})
	if err != nil {
		if strings.Contains(err.Error(), "not found") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	for _, role := range Roles {
		if p.runKubeparts[role] != pieces[role].implemented {
			t.Errorf("%s: runs kubeparts piece = %v, implemented = %v", role, p.runKubeparts[role], pieces[role].implemented)
		}
		if pieces[role].implemented {
			continue
		}
		found := false
		for _, n := range p.notes {
			found = found || strings.HasPrefix(n, role+": ")
		}
		if !found {
			t.Errorf("no note says what runs for role %s: %v", role, p.notes)
		}
	}
}

func TestStockControllers(t *testing.T) {
	off := ""
	for _, name := range controllernames.StockNames() {
		off += ",-" + name
	}
	for _, tc := range []struct {
		kubepartsRuns bool
		want          string
	}{
		{false, "*"},
		{true, "*" + off},
	} {
		p := &plan{runKubeparts: map[string]bool{RoleControllerManager: tc.kubepartsRuns}}
		if got := p.stockControllers(); got != tc.want {
			t.Errorf("kubeparts runs=%v: --controllers=%s, want %s", tc.kubepartsRuns, got, tc.want)
		}
	}
}

func TestBelongs(t *testing.T) {
	l := layoutFor("/data/kp")
	for _, tc := range []struct {
		name string
		p    procInfo
		want bool
	}{
		{"etcd of the cluster", procInfo{cmdline: []string{"/w/bin/etcd", "--data-dir=/data/kp/etcd"}}, true},
		{"shim by socket in run dir", procInfo{cmdline: []string{"/usr/bin/containerd-shim-runc-v2", "-address", l.RunDir + "/containerd.sock"}}, true},
		{"pod process by cgroup", procInfo{cmdline: []string{"/pause"}, cgroup: "4:memory:" + l.CgroupRoot + "/kubepods/besteffort/pod1/abc\n"}, true},
		{"process without a command line, by cgroup", procInfo{cgroup: "1:cpu:" + l.CgroupRoot + "\n"}, true},
		{"editor on a log file", procInfo{cmdline: []string{"vim", "/data/kp/logs/kubelet.log"}}, false},
		{"tail on a log file", procInfo{cmdline: []string{"/usr/bin/tail", "-f", "/data/kp/logs/etcd.log"}}, false},
		{"etcd of another cluster", procInfo{cmdline: []string{"/w/bin/etcd", "--data-dir=/data/kp2/etcd"}}, false},
		{"etcd whose dir only shares a prefix", procInfo{cmdline: []string{"etcd", "--data-dir=/data/kpx"}}, false},
		{"pod of another cluster", procInfo{cmdline: []string{"/pause"}, cgroup: "4:memory:/kubeparts-ffffffff/kubepods/x\n"}, false},
	} {
		if got := belongs(tc.p, l); got != tc.want {
			t.Errorf("%s: belongs = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLayoutsOfTwoDataDirsDoNotCollide(t *testing.T) {
	a, b := layoutFor("/data/one"), layoutFor("/data/two")
	if a.RunDir == b.RunDir || a.CgroupRoot == b.CgroupRoot {
		t.Fatalf("two data dirs share run dir or cgroup: %+v %+v", a, b)
	}
	if len(a.RunDir+"/containerd-ttrpc.sock") >= 108 {
		t.Fatalf("socket path %q too long for a unix socket", a.RunDir)
	}
	ports := portsFrom(DefaultPortBase)
	seen := map[int]bool{}
	for _, p := range []int{ports.APIServer, ports.EtcdClient, ports.EtcdPeer, ports.EtcdMetrics, ports.ControllerManager,
		ports.Scheduler, ports.Kubelet, ports.KubeletHealthz, ports.Stream, ports.KubepartsAPIServer,
		ports.KubepartsCMMetrics, ports.KubepartsCMHealth} {
		if seen[p] || p < DefaultPortBase || p >= DefaultPortBase+PortCount {
			t.Fatalf("port %d repeated or outside the reserved range", p)
		}
		seen[p] = true
	}
}

// Workers must not collide with each other, with node 0 or with another cluster's
// nodes, and their names must fit the kernel's limits.
func TestNodeSpecs(t *testing.T) {
	host := net.IPv4(192, 0, 2, 10).To4()
	// Fixed pod ranges: without a cloud (--stock=cloud-controller-manager).
	noCloud := []string{RoleCloud}
	a := nodeSpecs(layoutFor("/data/a"), Options{NodeName: "n", Nodes: 4, Stock: noCloud}, host)
	b := nodeSpecs(layoutFor("/data/b"), Options{NodeName: "n", Nodes: 4, Stock: noCloud}, host)
	for _, n := range nodeSpecs(layoutFor("/data/a"), Options{NodeName: "n", Nodes: 4}, host) {
		if n.podCIDR != "" {
			t.Errorf("with the cloud, node %s has the fixed pod range %s; want node IPAM's", n.name, n.podCIDR)
		}
	}
	if len(a) != 4 {
		t.Fatalf("%d nodes, want 4", len(a))
	}
	if !a[0].ip.Equal(host) || a[0].netns != "" || !strings.HasPrefix(a[0].dir, "/data/a/") {
		t.Errorf("node 0 = %+v, want the host's node", a[0])
	}
	la, lb := layoutFor("/data/a"), layoutFor("/data/b")
	if la.LoadBalancerInterface == lb.LoadBalancerInterface || la.LoadBalancerTable == lb.LoadBalancerTable || len(la.LoadBalancerInterface) > 15 ||
		la.LoadBalancerCIDR.IP.To4() == nil || la.LoadBalancerCIDR.Contains(la.ServiceCIDR.IP) || la.LoadBalancerCIDR.Contains(la.ClusterCIDR.IP) {
		t.Errorf("load balancers of two clusters: %s %s %s / %s %s %s", la.LoadBalancerInterface, la.LoadBalancerTable, la.LoadBalancerCIDR,
			lb.LoadBalancerInterface, lb.LoadBalancerTable, lb.LoadBalancerCIDR)
	}
	zoned := nodeSpecs(layoutFor("/data/a"), Options{NodeName: "n", Nodes: 4, Zones: []string{"a", "b"}}, host)
	if got := []string{zoned[0].zone, zoned[1].zone, zoned[2].zone, zoned[3].zone}; strings.Join(got, ",") != "a,b,a,b" || a[0].zone != "" {
		t.Errorf("zones %v over --zones a,b, want round robin a,b,a,b (and none without --zones: %q)", got, a[0].zone)
	}
	if lone := nodeSpecs(layoutFor("/data/a"), Options{NodeName: "n", Nodes: 1}, host); !lone[0].masquerade || a[0].masquerade {
		t.Errorf("masquerade: lone node %v, node 0 of 4 %v; want only a lone node to NAT", lone[0].masquerade, a[0].masquerade)
	}
	seen := map[string]string{}
	unique := func(kind, v, who string) {
		if prev, ok := seen[kind+v]; ok {
			t.Errorf("%s %s of %s is also %s's", kind, v, who, prev)
		}
		seen[kind+v] = who
	}
	for _, nodes := range [][]nodeSpec{a, b} {
		for _, n := range nodes {
			who := n.dir
			unique("pod CIDR", n.podCIDR, who)
			unique("dir", n.dir, who)
			unique("run dir", n.runDir, who)
			unique("cgroup root", n.cgroupRoot, who)
			if n.index == 0 {
				continue
			}
			unique("IP", n.ip.String(), who)
			unique("netns", n.netns, who)
			unique("veth", n.veth, who)
			if want := fmt.Sprintf("n-worker%d", n.index); n.name != want {
				t.Errorf("worker %d is named %q, want %q", n.index, n.name, want)
			}
			if len(n.veth) > 15 {
				t.Errorf("veth %q is longer than IFNAMSIZ-1", n.veth)
			}
			// The gateway and the node share a /30 inside 100.64.0.0/10.
			_, shared, _ := net.ParseCIDR("100.64.0.0/10")
			link := &net.IPNet{IP: n.gateway.Mask(net.CIDRMask(30, 32)), Mask: net.CIDRMask(30, 32)}
			if !shared.Contains(n.ip) || !link.Contains(n.ip) || n.ip.Equal(n.gateway) || n.gateway.Equal(link.IP) {
				t.Errorf("worker %d: ip %s gateway %s do not share a /30 in 100.64.0.0/10 as host addresses", n.index, n.ip, n.gateway)
			}
			if !strings.HasPrefix(n.netns, netnsPrefix(layoutFor("/data/a"))) && !strings.HasPrefix(n.netns, netnsPrefix(layoutFor("/data/b"))) {
				t.Errorf("netns %q lacks its cluster's prefix: removeHostNetworks would miss it", n.netns)
			}
			if !strings.HasPrefix(n.cgroupRoot, nodes[0].cgroupRoot+"/") {
				t.Errorf("cgroup root %s is not under node 0's %s: the leftover sweep would miss its pods", n.cgroupRoot, nodes[0].cgroupRoot)
			}
			if got := n.procName("containerd"); got != "containerd-"+n.name {
				t.Errorf("procName = %q", got)
			}
			bin, args := n.command("/usr/bin/nsenter", "/usr/bin/containerd", []string{"--config", "c"})
			if bin != "/usr/bin/nsenter" || strings.Join(args, " ") != "--net=/run/netns/"+n.netns+" -- /usr/bin/containerd --config c" {
				t.Errorf("command = %s %v", bin, args)
			}
		}
	}
	if bin, args := a[0].command("/usr/bin/nsenter", "/bin/x", []string{"y"}); bin != "/bin/x" || len(args) != 1 {
		t.Errorf("node 0 command = %s %v, want it run as is", bin, args)
	}
}

// TestClusterNetworksDeriveFromDataDir: each data dir gets its own service
// range and proxy table (two clusters on one machine share the host's
// network namespace), the pod CIDRs of every node fall in the cluster CIDR
// the proxies masquerade by, and the DNS Service is the tenth address.
func TestClusterNetworksDeriveFromDataDir(t *testing.T) {
	a, b := layoutFor("/var/lib/kubeparts/a"), layoutFor("/var/lib/kubeparts/b")
	if a.ProxyTable == b.ProxyTable {
		t.Errorf("two data dirs share the proxy table %s", a.ProxyTable)
	}
	for _, l := range []Layout{a, b} {
		if ones, _ := l.ServiceCIDR.Mask.Size(); ones != 16 || l.ServiceCIDR.IP[1] < 100 || l.ServiceCIDR.IP[1] > 199 {
			t.Errorf("service range %s: want a /16 in 10.100-10.199", l.ServiceCIDR)
		}
		if l.ServiceCIDR.Contains(l.ClusterCIDR.IP) || l.ClusterCIDR.Contains(l.ServiceCIDR.IP) {
			t.Errorf("service range %s overlaps the pod range %s", l.ServiceCIDR, l.ClusterCIDR)
		}
		for _, n := range nodeSpecs(l, Options{NodeName: "n", Nodes: 4, Stock: []string{RoleCloud}}, net.IPv4(192, 0, 2, 1)) {
			_, pods, err := net.ParseCIDR(n.podCIDR)
			if err != nil || !l.ClusterCIDR.Contains(pods.IP) {
				t.Errorf("node %s pod CIDR %s outside the cluster CIDR %s", n.name, n.podCIDR, l.ClusterCIDR)
			}
		}
		p := &plan{layout: l}
		if got, want := p.dnsIP().String(), fmt.Sprintf("10.%d.0.10", l.ServiceCIDR.IP[1]); got != want {
			t.Errorf("DNS IP %s, want %s", got, want)
		}
		if got, want := p.kubernetesServiceIP().String(), fmt.Sprintf("10.%d.0.1", l.ServiceCIDR.IP[1]); got != want {
			t.Errorf("kubernetes Service IP %s, want %s", got, want)
		}
	}
}

// `kubeparts status` names each restarted component with its count, sorted,
// and says nothing when none was restarted or the file is unreadable.
func TestRestartsLine(t *testing.T) {
	l := Layout{RunDir: t.TempDir()}
	if got := restartsLine(l); got != "" {
		t.Errorf("no file: %q, want nothing", got)
	}
	for _, tc := range []struct{ file, want string }{
		{`[]`, ""},
		{`not json`, ""},
		{`[{"process":"kubeparts-scheduler","binary":"kubeparts-scheduler","restarts":2},{"process":"etcd-kpha-cp2","binary":"etcd","instance":"kpha-cp2","restarts":1}]`,
			"; restarts: etcd-kpha-cp2 1, kubeparts-scheduler 2"},
	} {
		if err := os.WriteFile(restartsFile(l), []byte(tc.file), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := restartsLine(l); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.file, got, tc.want)
		}
	}
}
