package localcluster

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateTopology(t *testing.T) {
	for _, tc := range []struct {
		name            string
		in              Options
		err             string
		planes, members int
		etcd            string
	}{
		{"the default", Options{}, "", 1, 1, EtcdStacked},
		{"stacked three", Options{ControlPlanes: 3}, "", 3, 3, EtcdStacked},
		{"external, default members", Options{ControlPlanes: 2, Etcd: EtcdExternal}, "", 2, 3, EtcdExternal},
		{"external five", Options{ControlPlanes: 3, Etcd: EtcdExternal, EtcdMembers: 5}, "", 3, 5, EtcdExternal},
		{"stacked with another count", Options{ControlPlanes: 3, EtcdMembers: 5}, "stacked etcd has one member per control-plane host", 0, 0, ""},
		{"an even count", Options{ControlPlanes: 2, Etcd: EtcdExternal, EtcdMembers: 4}, "use an odd number", 0, 0, ""},
		{"stacked two: even", Options{ControlPlanes: 2}, "--control-planes 2 with stacked etcd makes 2 etcd members: use an odd number", 0, 0, ""},
		{"too many", Options{ControlPlanes: 9}, "--control-planes 9 out of range", 0, 0, ""},
		{"negative", Options{ControlPlanes: -1}, "out of range", 0, 0, ""},
		{"unknown etcd", Options{Etcd: "sidecar"}, `--etcd "sidecar"`, 0, 0, ""},
		{"too many members", Options{Etcd: EtcdExternal, EtcdMembers: 9}, "--etcd-members 9 out of range", 0, 0, ""},
	} {
		o := tc.in
		err := validateTopology(&o)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || o.ControlPlanes != tc.planes || o.EtcdMembers != tc.members || o.Etcd != tc.etcd {
			t.Errorf("%s: %v, %d control planes, %d %s members; want %d, %d %s", tc.name, err, o.ControlPlanes, o.EtcdMembers, o.Etcd, tc.planes, tc.members, tc.etcd)
		}
	}
}

// An HA topology's hosts are namespaced like workers and never collide with them or
// with each other (addresses, namespaces, links); the default topology is the machine.
func TestTopologyHosts(t *testing.T) {
	machine := net.IPv4(192, 168, 1, 10).To4()
	l := layoutFor("/data/a")
	def := topologyFor(l, Options{NodeName: "n", ControlPlanes: 1, Etcd: EtcdStacked, EtcdMembers: 1}, machine)
	if def.ha() || len(def.controlPlanes) != 1 || def.controlPlanes[0].netns != "" || !def.controlPlanes[0].ip.Equal(machine) || len(def.hosts()) != 0 {
		t.Errorf("default topology %+v, want the machine alone", def)
	}
	if def.etcdName(def.etcd[0]) != "default" {
		t.Errorf("the default member is %q, want the name its data dir was made with", def.etcdName(def.etcd[0]))
	}
	o := Options{NodeName: "n", Nodes: MaxNodes, ControlPlanes: MaxControlPlanes, Etcd: EtcdExternal, EtcdMembers: MaxEtcdMembers}
	ext := topologyFor(l, o, machine)
	if !ext.ha() || len(ext.controlPlanes) != MaxControlPlanes || len(ext.etcd) != MaxEtcdMembers || len(ext.hosts()) != MaxControlPlanes+MaxEtcdMembers {
		t.Fatalf("external topology: %d control planes, %d members, %d hosts", len(ext.controlPlanes), len(ext.etcd), len(ext.hosts()))
	}
	stacked := topologyFor(l, Options{NodeName: "n", ControlPlanes: 3, Etcd: EtcdStacked, EtcdMembers: 3}, machine)
	if len(stacked.hosts()) != 3 || stacked.etcd[1].name != stacked.controlPlanes[1].name {
		t.Errorf("stacked: %d hosts, member 1 on %s; want each member on its control-plane host", len(stacked.hosts()), stacked.etcd[1].name)
	}
	seen := map[string]string{}
	unique := func(kind, v, who string) {
		if prev, ok := seen[kind+v]; ok {
			t.Errorf("%s %s of %s is also %s's", kind, v, who, prev)
		}
		seen[kind+v] = who
	}
	var all []netHost
	for _, n := range nodeSpecs(l, o, machine)[1:] {
		all = append(all, n.netHost)
	}
	all = append(all, ext.hosts()...)
	_, shared, _ := net.ParseCIDR("100.64.0.0/10")
	for _, h := range all {
		unique("name", h.name, h.name)
		unique("IP", h.ip.String(), h.name)
		unique("gateway", h.gateway.String(), h.name)
		unique("netns", h.netns, h.name)
		unique("veth", h.veth, h.name)
		if len(h.veth) > 15 || !shared.Contains(h.ip) || !strings.HasPrefix(h.netns, netnsPrefix(l)) {
			t.Errorf("host %s: veth %q, ip %s, netns %s", h.name, h.veth, h.ip, h.netns)
		}
	}
	cp1 := ext.controlPlanes[0]
	if cp1.name != "n-cp1" || cp1.uts == "" || !strings.HasPrefix(cp1.uts, l.RunDir+"/") {
		t.Errorf("control-plane host 1: %+v", cp1)
	}
	bin, args := cp1.command("/usr/bin/nsenter", "/bin/etcd", []string{"--x"})
	if want := "--net=/run/netns/" + cp1.netns + " --uts=" + cp1.uts + " -- /bin/etcd --x"; bin != "/usr/bin/nsenter" || strings.Join(args, " ") != want {
		t.Errorf("command %s %v, want nsenter %s", bin, args, want)
	}
	if ext.etcdName(ext.etcd[2]) != "n-etcd3" || ext.etcd[2].name != "n-etcd3" {
		t.Errorf("etcd member 3 named %q", ext.etcdName(ext.etcd[2]))
	}
}

// HAProxy's configuration checks every kube-apiserver's /readyz and listens at the
// cluster's API port.
func TestHAProxyConfig(t *testing.T) {
	machine := net.IPv4(192, 168, 1, 10).To4()
	p := &plan{Options: Options{NodeName: "n", ControlPlanes: 3, Etcd: EtcdStacked, EtcdMembers: 3}, ports: portsFrom(30443), hostIP: machine}
	p.topo = topologyFor(layoutFor("/data/a"), p.Options, machine)
	cfg := p.haproxyConfig()
	for _, want := range []string{"use_backend kube-apiservers-unready if { nbsrv(kube-apiservers) eq 0 }", "tcp-check connect ssl", "bind 0.0.0.0:30443", "option httpchk GET /readyz", "http-check expect status 200", "check-ssl verify none", "on-marked-down shutdown-sessions", "mode tcp"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg lacks %q:\n%s", want, cfg)
		}
	}
	for _, h := range p.topo.controlPlanes {
		if n := strings.Count(cfg, "server "+h.name+" "+h.ip.String()+":30443\n"); n != 2 {
			t.Errorf("haproxy.cfg has %d server lines for %s, want one per backend", n, h.name)
		}
	}
}

// A data dir keeps the topology it was made with: another one would start an empty
// etcd beside its data.
func TestCheckTopology(t *testing.T) {
	dir := t.TempDir()
	p := func(o Options) *plan {
		if err := validateTopology(&o); err != nil {
			t.Fatal(err)
		}
		return &plan{Options: Options{DataDir: dir, ControlPlanes: o.ControlPlanes, Etcd: o.Etcd, EtcdMembers: o.EtcdMembers}, layout: layoutFor(dir)}
	}
	if err := p(Options{ControlPlanes: 3}).checkTopology(); err != nil {
		t.Fatalf("a new data dir: %v", err)
	}
	// No etcd data yet (the first start failed early): another topology may take it.
	if err := p(Options{}).checkTopology(); err != nil {
		t.Fatalf("a data dir without etcd data: %v", err)
	}
	if err := p(Options{ControlPlanes: 3}).checkTopology(); err != nil {
		t.Fatalf("back to 3: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "etcd-n-cp1", "member"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := p(Options{ControlPlanes: 3}).checkTopology(); err != nil {
		t.Errorf("the same topology again: %v", err)
	}
	err := p(Options{}).checkTopology()
	if err == nil || !strings.Contains(err.Error(), "was made with --control-planes=3 --etcd=stacked --etcd-members=3") || !strings.Contains(err.Error(), "--fresh") {
		t.Errorf("another topology: %v", err)
	}
	// A data dir from before topologies were recorded, with etcd data: the default.
	old := t.TempDir()
	if err := os.MkdirAll(filepath.Join(layoutFor(old).Etcd, "member"), 0o755); err != nil {
		t.Fatal(err)
	}
	q := p(Options{ControlPlanes: 3})
	q.DataDir, q.layout = old, layoutFor(old)
	if err := q.checkTopology(); err == nil || !strings.Contains(err.Error(), "--control-planes=1") {
		t.Errorf("an unrecorded data dir with etcd data, started HA: %v", err)
	}
}

// The configuration is what haproxy itself accepts (when it is installed: make deps).
func TestHAProxyConfigValid(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed (make deps installs it)")
	}
	machine := net.IPv4(192, 168, 1, 10).To4()
	p := &plan{Options: Options{NodeName: "n", ControlPlanes: 3, Etcd: EtcdStacked, EtcdMembers: 3}, ports: portsFrom(30443), hostIP: machine}
	p.topo = topologyFor(layoutFor("/data/a"), p.Options, machine)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(p.haproxyConfig()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Errorf("haproxy -c: %v\n%s", err, out)
	}
}
