package proxy

import (
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/knftables"
)

// BenchmarkFullSyncRender: the proxy's own share of a full sync of 1,000
// Services x 10 endpoints and one of 10,000 (rendering, and the transaction
// streamed to a stand-in for nft; nft's share is measured by
// test/bench/proxy). PROXY_FULLSYNC_DUMP=path keeps the text, to time
// `nft -f` on it alone.
func BenchmarkFullSyncRender(b *testing.B) {
	var svcs []*corev1.Service
	var sl []*discoveryv1.EndpointSlice
	for i := range 1000 {
		name := fmt.Sprintf("svc-%d", i)
		svcs = append(svcs, makeService("bench", name, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)).port("http", tcp, 80, 0).obj())
		s := makeSlice("bench", name+"-1", name).port("http", tcp, 8080)
		for j := range 10 {
			s.ep(fmt.Sprintf("10.244.%d.%d", i/25, (i%25)*10+j+1), "node-a", "ready")
		}
		sl = append(sl, s.obj())
	}
	// And one Service of 10,000 endpoints, as in test/bench/proxy.
	svcs = append(svcs, makeService("bench", "big", "10.96.200.1").port("http", tcp, 80, 0).obj())
	for k := range 100 {
		s := makeSlice("bench", fmt.Sprintf("big-%d", k), "big").port("http", tcp, 8080)
		for j := range 100 {
			s.ep(fmt.Sprintf("10.250.%d.%d", k, j+1), "node-a", "ready")
		}
		sl = append(sl, s.obj())
	}
	t := &testing.T{}
	out := os.Getenv("PROXY_FULLSYNC_DUMP")
	if out == "" {
		out = "/dev/null"
	}
	b.ReportAllocs()
	for b.Loop() {
		rules, _ := render(t, nodeInfo{name: "node-a"}, renderContext{clusterCIDRs: "10.244.0.0/16"}, svcs, sl)
		tb := newTable(knftables.NewFake(knftables.IPv4Family, "kubeparts-proxy"), 14)
		tb.nftCommand, tb.name = fakeNFT(b, "cat > "+out), "kubeparts-proxy"
		if err := tb.fullSync(context.Background(), rules, []string{"192.168.1.10"}, []string{"10.96.0.0/12"}); err != nil {
			b.Fatal(err)
		}
	}
}
