package localcluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/kubeparts/kubeparts/cloud"
)

// cloudRegion is the region of every node of a local cluster: one machine.
const cloudRegion = "local"

// routeReconciliationPeriod: the route controller lists the machine's routes
// and the Nodes this often (stock: 10s). A worker's pods are reachable from
// other nodes only once its route is there, and `up` waits for it: a short
// period keeps start-up quick, and a pass costs one netlink dump.
const routeReconciliationPeriod = 3 * time.Second

// inventoryPath is where the cloud provider reads the cluster's hosts.
func (p *plan) inventoryPath() string { return filepath.Join(p.layout.Cloud, "inventory.json") }

// writeInventory tells the cloud provider which hosts this run has: a host
// that an earlier run had and this one has not is gone, and the cloud's
// node-lifecycle controller deletes its Node.
func (p *plan) writeInventory() error {
	inv := &cloud.Inventory{Cluster: p.layout.ID, Region: cloudRegion}
	for _, n := range p.nodes {
		h := cloud.Host{Name: n.name, InternalIP: n.ip.String(), Zone: n.zone, InstanceType: "kubeparts-machine", NetNS: n.netns}
		if n.netns != "" {
			h.InstanceType = "kubeparts-netns"
		}
		inv.Hosts = append(inv.Hosts, h)
	}
	return cloud.WriteInventory(p.inventoryPath(), inv)
}

// cloudControllerManagerArgs runs the cloud-controller-manager as kubeadm's
// external cloud providers run it: its own identity, its Lease off (one
// instance), and the provider's config in the data dir. Its route
// controller routes the pod range node IPAM gave each Node to the node's
// host, checking every routeReconciliationPeriod.
func (p *plan) cloudControllerManagerArgs(c *certs) ([]string, error) {
	config := filepath.Join(p.layout.Cloud, "cloud.yaml")
	body := fmt.Sprintf("inventory: %s\nloadBalancerInterface: %s\nnftablesTable: %s\n",
		p.inventoryPath(), p.layout.LoadBalancerInterface, p.layout.LoadBalancerTable)
	if err := os.MkdirAll(p.layout.Cloud, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(config, []byte(body), 0o644); err != nil {
		return nil, err
	}
	return []string{
		"--kubeconfig=" + c.cloud,
		"--authentication-kubeconfig=" + c.cloud,
		"--authorization-kubeconfig=" + c.cloud,
		"--cloud-provider=" + cloud.ProviderName,
		"--cloud-config=" + config,
		"--load-balancer-cidr=" + p.layout.LoadBalancerCIDR.String(),
		// On loopback, or the machine's address in an HA topology: kubeparts-apiserver
		// probes it from the control-plane hosts.
		"--bind-address=" + p.cloudAddress(),
		fmt.Sprintf("--secure-port=%d", p.ports.CloudControllerManager),
		"--cert-dir=" + filepath.Join(p.layout.PKI, "kubeparts-cloud-controller-manager"),
		"--leader-elect=false",
		"--configure-cloud-routes=true",
		"--cluster-cidr=" + p.layout.ClusterCIDR.String(),
		"--route-reconciliation-period=" + routeReconciliationPeriod.String(),
		"--cluster-name=" + p.layout.ID,
	}, nil
}

// cloudAddress is where the cloud controller manager serves (/healthz, /metrics).
func (p *plan) cloudAddress() string {
	if p.topo.ha() {
		return p.hostIP.String()
	}
	return "127.0.0.1"
}

// removeLoadBalancers removes what the cloud's load balancers put on the
// machine (their table and dummy interface): like the proxy's rules, they
// would otherwise outlive the cluster.
func (p *plan) removeLoadBalancers() {
	if nft := p.binaries["nft"]; nft != "" {
		_ = exec.Command(nft, "delete", "table", "ip", p.layout.LoadBalancerTable).Run()
	}
	if ip, err := lookPath("ip"); err == nil {
		_ = exec.Command(ip, "link", "delete", p.layout.LoadBalancerInterface).Run()
		// Where a kernel without dummy interfaces got them instead.
		_ = exec.Command(ip, "addr", "flush", "dev", "lo", "label", cloud.LoopbackLabel(p.layout.LoadBalancerInterface)).Run()
	}
}

// routedVia reports whether the machine routes cidr via gw (a worker's
// address), as the cloud's route controller programs it.
func routedVia(cidr string, gw net.IP) bool {
	_, dst, err := net.ParseCIDR(cidr)
	if err != nil {
		return false
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst, Protocol: cloud.RouteProtocol},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return false
	}
	for _, r := range routes {
		if r.Gw.Equal(gw) {
			return true
		}
	}
	return false
}
