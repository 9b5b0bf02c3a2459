package cloud

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	cloudprovider "k8s.io/cloud-provider"
)

// fakeTable is a routing table in memory.
type fakeTable struct {
	routes map[netip.Prefix]netip.Addr
	src    map[netip.Prefix]netip.Addr
	fail   error
}

func (f *fakeTable) list() (map[netip.Prefix]netip.Addr, error) { return f.routes, f.fail }
func (f *fakeTable) replace(dst netip.Prefix, gw, src netip.Addr) error {
	if f.fail != nil {
		return f.fail
	}
	f.routes[dst], f.src[dst] = gw, src
	return nil
}
func (f *fakeTable) remove(dst netip.Prefix) error { delete(f.routes, dst); return f.fail }

func TestRoutes(t *testing.T) {
	inv := &Inventory{Cluster: "c", Hosts: []Host{
		{Name: "host", InternalIP: "192.0.2.1"},
		{Name: "w1", InternalIP: "100.64.0.2", NetNS: "ns-w1"},
		{Name: "w2", InternalIP: "100.64.0.6", NetNS: "ns-w2"},
	}}
	pfx := netip.MustParsePrefix
	table := &fakeTable{routes: map[netip.Prefix]netip.Addr{
		// Another cluster's route on the same machine, and one of a gone host.
		pfx("10.99.0.0/24"): netip.MustParseAddr("100.64.0.10"),
		pfx("10.1.9.0/24"):  netip.MustParseAddr("100.64.0.30"),
	}, src: map[netip.Prefix]netip.Addr{}}
	r := newRoutes(func() (*Inventory, error) { return inv, nil }, table, []netip.Prefix{pfx("10.1.0.0/16")})
	ctx := context.Background()

	cases := []struct {
		node, cidr string
		err        string // substring; "" for success
	}{
		{"host", "10.1.0.0/24", ""},
		{"w1", "10.1.1.0/24", ""},
		{"w2", "10.1.2.7/24", ""}, // masked to 10.1.2.0/24
		{"w1", "10.2.0.0/24", "outside the cluster CIDR"},
		{"nobody", "10.1.3.0/24", "no host in the inventory"},
		{"w1", "fd00::/64", "IPv4 only"},
		{"w1", "10.1.4.0", "pod CIDR"},
	}
	for _, tc := range cases {
		err := r.CreateRoute(ctx, "c", "uid", &cloudprovider.Route{TargetNode: types.NodeName(tc.node), DestinationCIDR: tc.cidr})
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("CreateRoute(%s, %s) = %v, want %q", tc.node, tc.cidr, err, tc.err)
		}
	}
	if got := table.routes[pfx("10.1.1.0/24")]; got != netip.MustParseAddr("100.64.0.2") {
		t.Errorf("route to w1's pods via %v, want 100.64.0.2", got)
	}
	if got := table.src[pfx("10.1.2.0/24")]; got != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("route to w2's pods from %v, want the machine's node address", got)
	}
	if _, ok := table.routes[pfx("10.1.0.0/24")]; ok {
		t.Error("the machine's own node got a kernel route")
	}

	list, err := r.ListRoutes(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]types.NodeName{}
	for _, rt := range list {
		got[rt.DestinationCIDR] = rt.TargetNode
	}
	want := map[string]types.NodeName{"10.1.0.0/24": "host", "10.1.1.0/24": "w1", "10.1.2.0/24": "w2", "10.1.9.0/24": ""}
	if len(got) != len(want) {
		t.Errorf("ListRoutes = %v, want %v", got, want)
	}
	for cidr, node := range want {
		if n, ok := got[cidr]; !ok || n != node {
			t.Errorf("ListRoutes[%s] = %q (listed %t), want %q", cidr, n, ok, node)
		}
	}

	for _, cidr := range []string{"10.1.0.0/24", "10.1.1.0/24"} {
		if err := r.DeleteRoute(ctx, "c", &cloudprovider.Route{DestinationCIDR: cidr}); err != nil {
			t.Errorf("DeleteRoute(%s): %v", cidr, err)
		}
	}
	list, _ = r.ListRoutes(ctx, "c")
	if len(list) != 2 {
		t.Errorf("after deleting two routes: %d listed, want 2 (w2's and the gone host's)", len(list))
	}
	if _, ok := table.routes[pfx("10.99.0.0/24")]; !ok {
		t.Error("another cluster's route was touched")
	}

	table.fail = errors.New("netlink: operation not permitted")
	if err := r.CreateRoute(ctx, "c", "uid", &cloudprovider.Route{TargetNode: "w1", DestinationCIDR: "10.1.1.0/24"}); err == nil || !strings.Contains(err.Error(), "not permitted") {
		t.Errorf("CreateRoute with a failing table = %v, want its error", err)
	}
	if _, err := r.ListRoutes(ctx, "c"); err == nil {
		t.Error("ListRoutes with a failing table succeeded")
	}
}
