package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
	cloudprovider "k8s.io/cloud-provider"
)

// RouteProtocol tags the kernel routes the provider owns (`ip route ... proto
// 107`), so it lists and deletes only those and leaves every other route of
// the machine alone. 107 is in no iproute2 rt_protos list.
const RouteProtocol = netlink.RouteProtocol(107)

// routeTable is the machine's routing table as the provider uses it; the
// kernel's (netlinkRoutes) or a test's.
type routeTable interface {
	// list returns the routes tagged RouteProtocol: destination → gateway.
	list() (map[netip.Prefix]netip.Addr, error)
	// replace points dst at gw, from src, tagged RouteProtocol.
	replace(dst netip.Prefix, gw, src netip.Addr) error
	// remove deletes the tagged route to dst (absent is fine).
	remove(dst netip.Prefix) error
}

// routes implements cloudprovider.Routes: a node's pod range is routed to
// the node's host. A worker's host is a network namespace, reached through
// its link to the machine, so its pod range gets a kernel route via the
// worker's address. The machine's own node needs none (its pods sit on a
// bridge of the machine), so its route is only remembered.
type routes struct {
	inventory func() (*Inventory, error)
	table     routeTable
	// cluster: the pod ranges whose routes are ours; the route controller
	// checks the same, so another cluster's routes on this machine are
	// never listed, let alone deleted.
	cluster []netip.Prefix

	mu sync.Mutex
	// local holds the routes to the machine's own node: destination → node.
	local map[netip.Prefix]types.NodeName
}

var _ cloudprovider.Routes = &routes{}

func newRoutes(inv func() (*Inventory, error), table routeTable, cluster []netip.Prefix) *routes {
	return &routes{inventory: inv, table: table, cluster: cluster, local: map[netip.Prefix]types.NodeName{}}
}

func (r *routes) ours(p netip.Prefix) bool {
	if len(r.cluster) == 0 {
		return true
	}
	return slices.ContainsFunc(r.cluster, func(c netip.Prefix) bool { return c.Bits() <= p.Bits() && c.Contains(p.Addr()) })
}

// routeName names a route after its destination: the name is what the
// route controller logs and hands back to DeleteRoute.
func routeName(dst netip.Prefix) string {
	return "kubeparts-" + strings.NewReplacer(".", "-", "/", "-").Replace(dst.String())
}

// ListRoutes lists the tagged routes in the cluster's pod ranges, each with
// the node whose host its gateway is; a gateway of no host (a host that is
// gone) leaves TargetNode empty, and the route controller deletes the route.
func (r *routes) ListRoutes(ctx context.Context, clusterName string) ([]*cloudprovider.Route, error) {
	inv, err := r.inventory()
	if err != nil {
		return nil, err
	}
	kernel, err := r.table.list()
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	byIP := map[netip.Addr]string{}
	for _, h := range inv.Hosts {
		if ip, err := netip.ParseAddr(h.InternalIP); err == nil {
			byIP[ip] = h.Name
		}
	}
	var out []*cloudprovider.Route
	for dst, gw := range kernel {
		if !r.ours(dst) {
			continue
		}
		out = append(out, &cloudprovider.Route{Name: routeName(dst), TargetNode: types.NodeName(byIP[gw]), DestinationCIDR: dst.String()})
	}
	r.mu.Lock()
	for dst, node := range r.local {
		out = append(out, &cloudprovider.Route{Name: routeName(dst), TargetNode: node, DestinationCIDR: dst.String()})
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b *cloudprovider.Route) int { return strings.Compare(a.DestinationCIDR, b.DestinationCIDR) })
	return out, nil
}

// CreateRoute routes route.DestinationCIDR to the host of route.TargetNode.
// A node of no host, or a destination outside the cluster's pod ranges, is
// an error: the route controller turns it into a FailedToCreateRoute Event
// on the Node.
func (r *routes) CreateRoute(ctx context.Context, clusterName string, nameHint string, route *cloudprovider.Route) error {
	dst, err := netip.ParsePrefix(route.DestinationCIDR)
	if err != nil {
		return fmt.Errorf("pod CIDR %q: %w", route.DestinationCIDR, err)
	}
	dst = dst.Masked()
	if !dst.Addr().Is4() {
		return fmt.Errorf("pod CIDR %s: the kubeparts provider routes IPv4 only", dst)
	}
	if !r.ours(dst) {
		return fmt.Errorf("pod CIDR %s is outside the cluster CIDR %v", dst, r.cluster)
	}
	inv, err := r.inventory()
	if err != nil {
		return err
	}
	h, ok := inv.host(string(route.TargetNode))
	if !ok {
		return fmt.Errorf("node %s has no host in the inventory", route.TargetNode)
	}
	if h.NetNS == "" {
		r.mu.Lock()
		r.local[dst] = route.TargetNode
		r.mu.Unlock()
		// A tagged route left for this range (the node moved to the machine)
		// would send its pods' traffic away.
		return r.table.remove(dst)
	}
	gw, err := netip.ParseAddr(h.InternalIP)
	if err != nil {
		return fmt.Errorf("host %s: address %q: %w", h.Name, h.InternalIP, err)
	}
	// From the machine's node address, as nodes of a real network talk:
	// otherwise the link's own address would be the client pods see.
	var src netip.Addr
	for _, m := range inv.Hosts {
		if m.NetNS == "" {
			src, _ = netip.ParseAddr(m.InternalIP)
		}
	}
	if err := r.table.replace(dst, gw, src); err != nil {
		return fmt.Errorf("route %s via %s (node %s): %w", dst, gw, route.TargetNode, err)
	}
	r.mu.Lock()
	delete(r.local, dst)
	r.mu.Unlock()
	return nil
}

// DeleteRoute removes the route to route.DestinationCIDR.
func (r *routes) DeleteRoute(ctx context.Context, clusterName string, route *cloudprovider.Route) error {
	dst, err := netip.ParsePrefix(route.DestinationCIDR)
	if err != nil {
		return fmt.Errorf("pod CIDR %q: %w", route.DestinationCIDR, err)
	}
	dst = dst.Masked()
	r.mu.Lock()
	delete(r.local, dst)
	r.mu.Unlock()
	return r.table.remove(dst)
}

// netlinkRoutes is the kernel's main routing table.
type netlinkRoutes struct{}

func (netlinkRoutes) list() (map[netip.Prefix]netip.Addr, error) {
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	out := map[netip.Prefix]netip.Addr{}
	for _, rt := range rs {
		if rt.Dst == nil {
			continue
		}
		dst, ok := prefixOf(rt.Dst)
		if !ok {
			continue
		}
		gw, _ := netip.AddrFromSlice(rt.Gw.To4())
		out[dst] = gw
	}
	return out, nil
}

func (netlinkRoutes) replace(dst netip.Prefix, gw, src netip.Addr) error {
	rt := &netlink.Route{Dst: ipNet(dst), Gw: gw.AsSlice(), Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	if src.IsValid() {
		rt.Src = src.AsSlice()
	}
	return netlink.RouteReplace(rt)
}

func (netlinkRoutes) remove(dst netip.Prefix) error {
	err := netlink.RouteDel(&netlink.Route{Dst: ipNet(dst), Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN})
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	ip, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip, ones), true
}
