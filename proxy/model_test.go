package proxy

import (
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// TestSliceEndpointsDeduplicates: an address in two slices (the
// EndpointSlice controller moving it) counts once, the ready copy winning
// whichever slice comes first; the same address on another port is another
// endpoint; the result is sorted by address.
func TestSliceEndpointsDeduplicates(t *testing.T) {
	svc := makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 0).port("admin", tcp, 81, 0).obj()
	ports, _ := servicePorts(svc)
	slices := []*discoveryv1.EndpointSlice{
		makeSlice("ns", "web-1", "web").port("http", tcp, 8080).ep("10.244.0.9", "node-a", "terminating").ep("10.244.0.10", "node-a", "ready").obj(),
		makeSlice("ns", "web-2", "web").port("http", tcp, 8080).ep("10.244.0.9", "node-b", "ready").ep("10.244.0.10", "node-a", "dead").obj(),
		makeSlice("ns", "web-3", "web").port("admin", tcp, 8081).ep("10.244.0.9", "node-b", "ready").obj(),
	}
	eps, problems := sliceEndpoints(slices, ports)
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	http := eps[ports[0].name]
	if len(http) != 2 || http[0].ip != "10.244.0.9" || http[1].ip != "10.244.0.10" {
		t.Fatalf("http endpoints %+v: want 10.244.0.9 then 10.244.0.10, once each", http)
	}
	if !http[0].ready || http[0].nodeName != "node-b" {
		t.Errorf("10.244.0.9: %+v, want the ready copy (node-b)", http[0])
	}
	if !http[1].ready || http[1].nodeName != "node-a" {
		t.Errorf("10.244.0.10: %+v, want the ready copy, not the later dead one", http[1])
	}
	if admin := eps[ports[1].name]; len(admin) != 1 || admin[0].port != 8081 {
		t.Errorf("admin endpoints %+v: want 10.244.0.9:8081", admin)
	}
}
