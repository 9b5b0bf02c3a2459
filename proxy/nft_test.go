package proxy

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/knftables"
)

// TestRealNFTables runs full and partial syncs against the kernel through
// the real nft, in a table of its own: what knftables' fake accepts, nft
// must too (it refuses, for instance, a map typed with th dport once the map
// exists). Needs root and nft.
func TestRealNFTables(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("nftables needs root")
	}
	nftPath, err := exec.LookPath("nft")
	if err != nil {
		t.Skip("nft not installed")
	}
	name := fmt.Sprintf("kubeparts-proxy-unit-%d", os.Getpid())
	nft, err := knftables.New(knftables.IPv4Family, name)
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { _ = cleanup(context.Background(), nft) })
	rc := renderContext{clusterCIDRs: "10.244.0.0/16"}
	base := clusterState{
		svcs: []*corev1.Service{
			makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 30080).typ(corev1.ServiceTypeNodePort).obj(),
			makeService("ns", "dns", "10.96.0.10").port("dns", udp, 53, 0).obj(),
			makeService("ns", "sig", "10.96.0.30").port("s", sctp, 9, 0).obj(),
		},
		slices: []*discoveryv1.EndpointSlice{web("10.244.0.7", "10.244.1.5"),
			makeSlice("ns", "dns-1", "dns").port("dns", udp, 53).ep("10.244.0.2", "node-a", "ready").obj(),
			makeSlice("ns", "sig-1", "sig").port("s", sctp, 9).ep("10.244.0.3", "node-a", "ready").obj()},
	}
	next := clusterState{
		svcs: append([]*corev1.Service{
			makeService("ns", "new", "10.96.0.50").port("q", udp, 5353, 0).affinity(30).obj(),
			makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 30080).typ(corev1.ServiceTypeNodePort).externalLocal(31000).obj(),
		}, base.svcs[1:]...),
		slices: []*discoveryv1.EndpointSlice{web("10.244.0.7", "10.244.2.8", "10.244.3.9"),
			makeSlice("ns", "dns-1", "dns").port("dns", udp, 53).ep("10.244.0.2", "node-a", "ready").ep("10.244.0.4", "node-a", "ready").obj(),
			makeSlice("ns", "new-1", "new").port("q", udp, 5353).ep("10.244.0.5", "node-a", "ready").obj()},
	}
	tb := newTable(nft, 14)
	tb.nftCommand, tb.name = nftPath, name
	before, _ := render(t, me, rc, base.svcs, base.slices)
	if err := tb.fullSync(context.Background(), before, []string{"192.0.2.10"}, []string{"10.96.0.0/12"}); err != nil {
		t.Fatalf("full sync: %v", err)
	}
	after, _ := render(t, me, rc, next.svcs, next.slices)
	changed := map[string]*serviceRules{}
	for k := range before {
		changed[k] = nil
	}
	maps.Copy(changed, after)
	if _, err := tb.partialSync(context.Background(), changed); err != nil {
		t.Fatalf("partial sync: %v", err)
	}
	// And back, in one full sync over what the kernel holds now.
	again, _ := render(t, me, rc, base.svcs, base.slices)
	if err := tb.fullSync(context.Background(), again, []string{"192.0.2.10"}, []string{"10.96.0.0/12"}); err != nil {
		t.Fatalf("full sync over a partial one: %v", err)
	}
	out, err := exec.Command(nftPath, "list", "table", "ip", name).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"meta l4proto udp dnat ip to numgen random mod 1", "meta l4proto sctp dnat ip to numgen", "10.244.1.5 . 8080"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
