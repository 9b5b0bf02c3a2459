package localcluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// MaxNodes bounds --nodes. Every node runs its own containerd and agent on this one
// machine, so a handful is what two cores carry; scale tests of the control plane
// want kubeparts-nodeagent's simulated nodes instead. The transit addresses below have
// room for 63 workers.
const MaxNodes = 16

// nodeSpec is one node of the local cluster: where its runtime keeps its state, which
// pod CIDR its bridge hands out and how it is reached.
//
// Node 0 lives in the host's network namespace (as a kubeadm control-plane node does)
// and is the only node of a default `up`. Every worker gets a network namespace of its
// own, joined to the host by a veth pair carrying a /30 from the shared address space
// 100.64.0.0/10; its default route points at the host and the host routes the worker's
// pod CIDR to it. Pods on different nodes therefore reach each other by plain routing
// through the host, without encapsulation or NAT, as the Kubernetes network model
// asks. Containerd and the agent enter only the network namespace (nsenter --net), so
// volumes the agent mounts stay visible to the runtime.
type nodeSpec struct {
	netHost
	index      int
	dir        string // containerd root, CNI config, agent root, pod logs, static pods
	runDir     string // sockets, containerd state, IPAM leases
	cgroupRoot string
	podCIDR    string // "" with node IPAM: the Node's spec.podCIDR
	bridge     string
	// masquerade: the bridge NATs pods' traffic leaving the pod CIDR. Only a lone node
	// does: with workers the host routes every pod CIDR and NAT would hide pod IPs.
	masquerade bool
	// zone is the node's zone (--zones), "" for none.
	zone string
}

// netHost is a machine of the local cluster as the network sees it: the machine itself
// (netns empty), or a network namespace joined to the machine by a veth pair, with an
// address of its own. Workers, control-plane hosts and etcd hosts are all netHosts.
type netHost struct {
	name string
	ip   net.IP // the host's address (a node's InternalIP)
	// The namespace, the machine's end of the veth pair and its address (the host's
	// default gateway). Empty for the machine itself.
	netns   string
	veth    string
	gateway net.IP
	// hostIP is the machine's address: it reaches the host and its pods from it, as
	// hosts of a real network talk from their own addresses (the veth's would show up
	// as the client of NodePorts).
	hostIP net.IP
	// uts is the file holding the host's UTS namespace, where its host name is its
	// name ("": the machine's): leader election identities start with the host name.
	uts string
}

// nodeSpecs lays out o.Nodes nodes. Everything derives from the data dir, so two
// clusters on one machine stay apart and a restarted cluster finds its state again.
func nodeSpecs(l Layout, o Options, host net.IP) []nodeSpec {
	sum := sha256.Sum256([]byte(l.DataDir))
	id := hex.EncodeToString(sum[:4])
	octet2, octet3 := podOctet(sum), int(sum[5])
	// With the cloud role (the default) each Node's range comes from the node IPAM
	// of kube-controller-manager and the cloud's route controller routes it.
	// Without a cloud nothing would route such ranges: `up` then plays the
	// network plugin's part, giving each node a fixed /24 of the cluster CIDR and
	// routing it when the node's network is made.
	podCIDR := func(i int) string {
		if !slices.Contains(o.Stock, RoleCloud) {
			return ""
		}
		return fmt.Sprintf("10.%d.%d.0/24", octet2, (octet3+i)%256)
	}
	nodes := []nodeSpec{{
		netHost: netHost{name: o.NodeName, ip: host},
		dir:     l.Node, runDir: l.RunDir, cgroupRoot: l.CgroupRoot,
		podCIDR: podCIDR(0), bridge: "kp" + id, masquerade: o.Nodes <= 1,
	}}
	for i := 1; i < o.Nodes; i++ {
		w := "worker" + strconv.Itoa(i)
		nodes = append(nodes, nodeSpec{
			netHost:    namespacedHost(l, host, o.NodeName+"-"+w, w, "w"+strconv.Itoa(i), i),
			index:      i,
			dir:        l.Node + "-" + w,
			runDir:     filepath.Join(l.RunDir, w),
			cgroupRoot: l.CgroupRoot + "/" + w,
			podCIDR:    podCIDR(i),
			bridge:     "kp" + id,
		})
	}
	if len(o.Zones) > 0 {
		for i := range nodes {
			nodes[i].zone = o.Zones[i%len(o.Zones)]
		}
	}
	return nodes
}

// namespacedHost lays out a host in a network namespace of its own: namespace
// kp<id>-<suffix>, veth kp<id><link>, and the slot-th /30 of the cluster's transit range
// (slots: workers 1-16, control-plane hosts 41-47, etcd hosts 51-57; 63 at most).
func namespacedHost(l Layout, machine net.IP, name, suffix, link string, slot int) netHost {
	sum := sha256.Sum256([]byte(l.DataDir))
	transit := func(host int) net.IP {
		return net.IPv4(100, byte(64+int(sum[6])%64), sum[7], byte(4*slot+host)).To4()
	}
	return netHost{
		name:    name,
		ip:      transit(2),
		netns:   netnsPrefix(l) + suffix,
		veth:    "kp" + hex.EncodeToString(sum[:4]) + link,
		gateway: transit(1),
		hostIP:  machine,
	}
}

// podOctet is the second octet of the cluster's pod addresses (10.x.0.0/16).
func podOctet(sum [32]byte) int { return 200 + int(sum[4])%50 }

// netnsPrefix starts the name of every worker network namespace of the cluster in l.
func netnsPrefix(l Layout) string {
	sum := sha256.Sum256([]byte(l.DataDir))
	return "kp" + hex.EncodeToString(sum[:4]) + "-"
}

// procName names a component of this node: plain on node 0, suffixed with the node's
// name on the workers (logs/containerd-<node>.log).
func (n netHost) procName(component string) string {
	if n.netns == "" {
		return component
	}
	return component + "-" + n.name
}

// command runs bin inside the host's network namespace, and its UTS namespace when it
// has one (nothing else of it changes).
func (n netHost) command(nsenter, bin string, args []string) (string, []string) {
	if n.netns == "" {
		return bin, args
	}
	enter := []string{"--net=" + filepath.Join("/run/netns", n.netns)}
	if n.uts != "" {
		enter = append(enter, "--uts="+n.uts)
	}
	return nsenter, append(append(enter, "--", bin), args...)
}

// setupNetwork creates the worker's namespace and its link to the host, and routes its
// pod CIDR through it when the range is fixed (with node IPAM the cloud's route
// controller does). What an earlier run left of it is removed first.
func (n nodeSpec) setupNetwork(ip, nsenter string) error {
	return n.netHost.setupNetwork(ip, nsenter, n.podCIDR)
}

// setupNetwork creates the host's namespace and its link to the machine, routing
// podCIDR (if any) through it.
func (n netHost) setupNetwork(ip, nsenter, podCIDR string) error {
	n.teardownNetwork(ip)
	gw, self := n.gateway.String(), n.ip.String()
	for _, args := range [][]string{
		{"netns", "add", n.netns},
		{"link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", n.netns},
		{"addr", "add", gw + "/30", "dev", n.veth},
		{"link", "set", n.veth, "up"},
		{"-n", n.netns, "link", "set", "lo", "up"},
		{"-n", n.netns, "addr", "add", self + "/30", "dev", "eth0"},
		{"-n", n.netns, "link", "set", "eth0", "up"},
		{"-n", n.netns, "route", "add", "default", "via", gw},
		{"route", "replace", transitNet(n.ip), "dev", n.veth, "scope", "link", "src", n.hostIP.String()},
	} {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("node %s network: ip %s: %v: %s", n.name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	if podCIDR != "" {
		args := []string{"route", "replace", podCIDR, "via", self, "dev", n.veth, "src", n.hostIP.String()}
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("node %s network: ip %s: %v: %s", n.name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	// The worker forwards between its pods and the host, the host between nodes.
	bin, args := n.command(nsenter, "sh", []string{"-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"})
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("node %s: enable forwarding: %v: %s", n.name, err, strings.TrimSpace(string(out)))
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding on the host: %w", err)
	}
	return nil
}

// transitNet is the /30 of a worker's link.
func transitNet(ip net.IP) string {
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(30, 32)), Mask: net.CIDRMask(30, 32)}).String()
}

// teardownNetwork removes the worker's namespace; its veth pair and the route through
// it go with it. Absent is fine.
func (n netHost) teardownNetwork(ip string) {
	_ = exec.Command(ip, "netns", "delete", n.netns).Run()
	_ = exec.Command(ip, "link", "delete", n.veth).Run()
}

// removeHostNetworks deletes every namespaced host of the cluster in l (workers, control-plane and etcd hosts), also those of
// an earlier run with more nodes, and the host ends of their links: the kernel destroys
// a namespace's devices asynchronously, so the links would linger for a moment and a
// quick restart could not create them again.
func removeHostNetworks(l Layout) {
	ip, err := exec.LookPath("ip")
	if err != nil {
		return
	}
	id := strings.TrimSuffix(netnsPrefix(l), "-")
	for _, link := range ipLinks(ip, "") {
		// Workers' (w), control-plane hosts' (c) and etcd hosts' (e) links.
		if rest, ok := strings.CutPrefix(link.name, id); ok && rest != "" && strings.ContainsRune("wce", rune(rest[0])) {
			_ = exec.Command(ip, "link", "delete", link.name).Run()
		}
	}
	out, _ := exec.Command(ip, "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		// "kp1234abcd-worker1 (id: 3)"
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, id+"-") {
			var pods []string
			for _, port := range ipLinks(ip, name, "master", id) {
				pods = append(pods, port.peerNetns)
			}
			_ = exec.Command(ip, "netns", "delete", name).Run()
			removeUnusedNamespaces(ip, pods)
		}
	}
}

// ipLink is a network interface as `ip -o link show` lists it.
type ipLink struct {
	name string
	// peerNetns names the namespace of a veth's other end (a pod's), when
	// that namespace has a name.
	peerNetns string
}

// ipLinks lists the links of netns ("" for the host's), filtered by args
// ("master", bridge: the bridge's ports).
func ipLinks(ip, netns string, args ...string) []ipLink {
	cmd := append([]string{"-o", "link", "show"}, args...)
	if netns != "" {
		cmd = append([]string{"-n", netns}, cmd...)
	}
	out, _ := exec.Command(ip, cmd...).Output()
	var links []ipLink
	for _, line := range strings.Split(string(out), "\n") {
		// "29: veth16fb2803@if2: <...> ... link/ether 7a:71:... link-netns cni-130a9e34-..."
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		link := ipLink{name: name}
		for i := 2; i+1 < len(f); i++ {
			if f[i] == "link-netns" {
				link.peerNetns = f[i+1]
			}
		}
		links = append(links, link)
	}
	return links
}

// removeUnusedNamespaces deletes the named network namespaces no process is
// in: those of pods whose sandboxes died with a killed containerd, which
// nobody else would ever remove from /run/netns.
func removeUnusedNamespaces(ip string, names []string) {
	for _, n := range names {
		if n == "" {
			continue
		}
		if out, err := exec.Command(ip, "netns", "pids", n).Output(); err == nil && strings.TrimSpace(string(out)) == "" {
			_ = exec.Command(ip, "netns", "delete", n).Run()
		}
	}
}
