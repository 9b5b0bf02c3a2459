package proxy

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// svc builds a Service; fixtures read like the objects they stand for.
type svcBuilder struct{ s *corev1.Service }

func makeService(ns, name, clusterIP string) *svcBuilder {
	return &svcBuilder{&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP}},
	}}
}

func (b *svcBuilder) port(name string, proto corev1.Protocol, port, nodePort int32) *svcBuilder {
	b.s.Spec.Ports = append(b.s.Spec.Ports, corev1.ServicePort{Name: name, Protocol: proto, Port: port, NodePort: nodePort})
	return b
}
func (b *svcBuilder) typ(t corev1.ServiceType) *svcBuilder { b.s.Spec.Type = t; return b }
func (b *svcBuilder) externalIPs(ips ...string) *svcBuilder {
	b.s.Spec.ExternalIPs = ips
	return b
}
func (b *svcBuilder) lb(ips ...string) *svcBuilder {
	b.s.Spec.Type = corev1.ServiceTypeLoadBalancer
	for _, ip := range ips {
		b.s.Status.LoadBalancer.Ingress = append(b.s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return b
}
func (b *svcBuilder) affinity(seconds int32) *svcBuilder {
	b.s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	b.s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &seconds}}
	return b
}
func (b *svcBuilder) externalLocal(hc int32) *svcBuilder {
	b.s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	b.s.Spec.HealthCheckNodePort = hc
	return b
}
func (b *svcBuilder) internalLocal() *svcBuilder {
	b.s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
	return b
}
func (b *svcBuilder) obj() *corev1.Service { return b.s }

type sliceBuilder struct{ s *discoveryv1.EndpointSlice }

func makeSlice(ns, name, service string) *sliceBuilder {
	return &sliceBuilder{&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}}
}

func (b *sliceBuilder) port(name string, proto corev1.Protocol, port int32) *sliceBuilder {
	b.s.Ports = append(b.s.Ports, discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: &port})
	return b
}

// ep adds an endpoint; state is "ready", "terminating" (serving) or "dead"
// (terminating, not serving).
func (b *sliceBuilder) ep(ip, node, state string, zoneHints ...string) *sliceBuilder {
	e := discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: &node}
	switch state {
	case "ready":
		e.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}
	case "terminating":
		e.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}
	case "dead":
		e.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(true)}
	}
	if len(zoneHints) > 0 {
		e.Hints = &discoveryv1.EndpointHints{}
		for _, z := range zoneHints {
			e.Hints.ForZones = append(e.Hints.ForZones, discoveryv1.ForZone{Name: z})
		}
	}
	b.s.Endpoints = append(b.s.Endpoints, e)
	return b
}
func (b *sliceBuilder) obj() *discoveryv1.EndpointSlice { return b.s }

// render runs the pure pipeline (model, endpoint choice, rules) over a
// cluster's objects, as the proxier does for one node.
func render(t *testing.T, node nodeInfo, rc renderContext, svcs []*corev1.Service, sl []*discoveryv1.EndpointSlice) (map[string]*serviceRules, []string) {
	t.Helper()
	out := map[string]*serviceRules{}
	var problems []string
	slots := newSlots()
	for _, s := range svcs {
		ports, problem := servicePorts(s)
		if problem != "" {
			problems = append(problems, problem)
		}
		var mine []*discoveryv1.EndpointSlice
		for _, x := range sl {
			if x.Namespace == s.Namespace && x.Labels[discoveryv1.LabelServiceName] == s.Name {
				mine = append(mine, x)
			}
		}
		eps, probs := sliceEndpoints(mine, ports)
		problems = append(problems, probs...)
		for _, sp := range ports {
			sp.slot = slots.assign(sp.name.key(), strings.ToLower(string(sp.name.Protocol)))
			out[sp.name.key()] = renderServicePort(sp, chooseEndpoints(sp, eps[sp.name], node), rc)
		}
	}
	return out, problems
}

func fullDump(t *testing.T, rules map[string]*serviceRules, nodeIPs []string) (string, *knftables.Fake, *table) {
	t.Helper()
	fake := knftables.NewFake(knftables.IPv4Family, "kubeparts-proxy")
	tb := newTable(fake, 14)
	if err := tb.fullSync(context.Background(), rules, nodeIPs, []string{"10.96.0.0/12"}); err != nil {
		t.Fatalf("full sync: %v", err)
	}
	return fake.Dump(), fake, tb
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".nft")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./proxy -run TestRulesGolden -update)", err)
	}
	if string(want) != got {
		t.Errorf("rules differ from %s (run with -update after checking the change):\n%s", path, diffLines(string(want), got))
	}
}

func diffLines(want, got string) string {
	w, g := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(want, "\n") {
		w[l] = true
	}
	for _, l := range strings.Split(got, "\n") {
		g[l] = true
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

const (
	tcp  = corev1.ProtocolTCP
	udp  = corev1.ProtocolUDP
	sctp = corev1.ProtocolSCTP
)

var me = nodeInfo{name: "node-a", zone: "zone-a"}

// TestRulesGolden renders one Service of each shape kube-proxy documents and
// compares the whole table with a golden file; the comments in each case say
// which behaviour the rules must show.
func TestRulesGolden(t *testing.T) {
	rc := renderContext{clusterCIDRs: "10.244.0.0/16"}
	cases := []struct {
		name   string
		rc     renderContext
		svcs   []*corev1.Service
		slices []*discoveryv1.EndpointSlice
	}{
		{
			// Two ready endpoints: random choice; one terminating endpoint is
			// left out while ready ones exist.
			name: "clusterip",
			svcs: []*corev1.Service{makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 0).obj()},
			slices: []*discoveryv1.EndpointSlice{makeSlice("ns", "web-1", "web").port("http", tcp, 8080).
				ep("10.244.1.5", "node-b", "ready").ep("10.244.0.7", "node-a", "ready").ep("10.244.2.9", "node-c", "terminating").obj()},
		},
		{
			// No endpoints: refused at once through the no-endpoint maps.
			name: "no-endpoints",
			svcs: []*corev1.Service{makeService("ns", "empty", "10.96.0.21").port("", udp, 53, 0).typ(corev1.ServiceTypeNodePort).obj()},
		},
		{
			// Only terminating endpoints: the serving ones are used, the
			// not-serving one never.
			name: "terminating-fallback",
			svcs: []*corev1.Service{makeService("ns", "draining", "10.96.0.22").port("", tcp, 80, 0).obj()},
			slices: []*discoveryv1.EndpointSlice{makeSlice("ns", "draining-1", "draining").port("", tcp, 80).
				ep("10.244.1.5", "node-b", "terminating").ep("10.244.1.6", "node-b", "dead").obj()},
		},
		{
			// NodePort + external IP + load balancer, Cluster policy: external
			// traffic is masqueraded and balanced over every endpoint.
			name: "nodeport-external-lb",
			svcs: []*corev1.Service{makeService("ns", "front", "10.96.0.23").port("http", tcp, 80, 30080).lb("192.0.2.10").externalIPs("198.51.100.7").obj()},
			slices: []*discoveryv1.EndpointSlice{makeSlice("ns", "front-1", "front").port("http", tcp, 8080).
				ep("10.244.0.7", "node-a", "ready").ep("10.244.1.5", "node-b", "ready").obj()},
		},
		{
			// externalTrafficPolicy Local: outside clients only reach this
			// node's endpoint and keep their address; pods and the node
			// itself go through the cluster path.
			name: "external-local",
			svcs: []*corev1.Service{makeService("ns", "keepsrc", "10.96.0.24").port("http", tcp, 80, 30081).typ(corev1.ServiceTypeNodePort).externalLocal(31000).obj()},
			slices: []*discoveryv1.EndpointSlice{makeSlice("ns", "keepsrc-1", "keepsrc").port("http", tcp, 8080).
				ep("10.244.0.7", "node-a", "ready").ep("10.244.1.5", "node-b", "ready").obj()},
		},
		{
			// externalTrafficPolicy Local without a local endpoint: outside
			// traffic is dropped here (the health check sends it elsewhere).
			name: "external-local-none-here",
			svcs: []*corev1.Service{makeService("ns", "elsewhere", "10.96.0.25").port("", tcp, 80, 30082).typ(corev1.ServiceTypeNodePort).externalLocal(31001).obj()},
			slices: []*discoveryv1.EndpointSlice{makeSlice("ns", "elsewhere-1", "elsewhere").port("", tcp, 80).
				ep("10.244.1.5", "node-b", "ready").obj()},
		},
		{
			// internalTrafficPolicy Local: the cluster IP reaches only this
			// node's endpoints; with none here it is dropped, not rejected.
			name: "internal-local",
			svcs: []*corev1.Service{
				makeService("ns", "nodelocal", "10.96.0.26").port("", tcp, 80, 0).internalLocal().obj(),
				makeService("ns", "nodelocal-none", "10.96.0.27").port("", tcp, 80, 0).internalLocal().obj(),
			},
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("ns", "nodelocal-1", "nodelocal").port("", tcp, 80).ep("10.244.0.7", "node-a", "ready").ep("10.244.1.5", "node-b", "ready").obj(),
				makeSlice("ns", "nodelocal-none-1", "nodelocal-none").port("", tcp, 80).ep("10.244.1.5", "node-b", "ready").obj(),
			},
		},
		{
			// ClientIP affinity: a set per endpoint remembers clients for the
			// timeout and is checked before the random choice.
			name: "session-affinity",
			svcs: []*corev1.Service{makeService("ns", "sticky", "10.96.0.28").port("", tcp, 80, 0).affinity(600).obj()},
			slices: []*discoveryv1.EndpointSlice{makeSlice("ns", "sticky-1", "sticky").port("", tcp, 80).
				ep("10.244.0.7", "node-a", "ready").ep("10.244.1.5", "node-b", "ready").obj()},
		},
		{
			// Round robin: numgen inc instead of random.
			name: "round-robin",
			rc:   renderContext{clusterCIDRs: "10.244.0.0/16", roundRobin: true},
			svcs: []*corev1.Service{makeService("ns", "rr", "10.96.0.29").port("", sctp, 9000, 0).obj()},
			slices: []*discoveryv1.EndpointSlice{makeSlice("ns", "rr-1", "rr").port("", sctp, 9000).
				ep("10.244.0.7", "node-a", "ready").ep("10.244.1.5", "node-b", "ready").ep("10.244.2.3", "node-c", "ready").obj()},
		},
		{
			// Topology: PreferClose with zone hints keeps this zone's endpoint.
			name: "topology-hints",
			svcs: func() []*corev1.Service {
				s := makeService("ns", "zonal", "10.96.0.30").port("", tcp, 80, 0).obj()
				s.Spec.TrafficDistribution = ptr.To(corev1.ServiceTrafficDistributionPreferClose)
				return []*corev1.Service{s}
			}(),
			slices: []*discoveryv1.EndpointSlice{makeSlice("ns", "zonal-1", "zonal").port("", tcp, 80).
				ep("10.244.0.7", "node-a", "ready", "zone-a").ep("10.244.1.5", "node-b", "ready", "zone-b").obj()},
		},
		{
			// masqueradeAll and no cluster CIDR: every packet to a Service is
			// masqueraded.
			name: "masquerade-all",
			rc:   renderContext{masqueradeAll: true},
			svcs: []*corev1.Service{makeService("ns", "masq", "10.96.0.31").port("", udp, 53, 0).obj()},
			slices: []*discoveryv1.EndpointSlice{makeSlice("ns", "masq-1", "masq").port("", udp, 5353).
				ep("10.244.0.7", "node-a", "ready").obj()},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.rc
			if r == (renderContext{}) {
				r = rc
			}
			rules, problems := render(t, me, r, tc.svcs, tc.slices)
			if len(problems) > 0 {
				t.Fatalf("unexpected problems: %v", problems)
			}
			dump, _, _ := fullDump(t, rules, []string{"192.168.1.10"})
			golden(t, tc.name, dump)
		})
	}
}

// TestBadInputSkipped: garbage addresses, port names that match nothing, a
// port without a number and an IPv6-only Service are skipped with a
// problem each, and the good parts of the same objects are still served.
func TestBadInputSkipped(t *testing.T) {
	svcs := []*corev1.Service{
		makeService("ns", "mixed", "10.96.0.40").port("http", tcp, 80, 0).obj(),
		makeService("ns", "v6only", "fd00::40").port("", tcp, 80, 0).obj(),
		makeService("ns", "fine", "10.96.0.41").port("", tcp, 80, 0).obj(),
	}
	bad := makeSlice("ns", "mixed-1", "mixed").port("http", tcp, 8080).ep("not-an-ip", "node-a", "ready").ep("10.244.0.9", "node-a", "ready").
		ep("fd00::9", "node-a", "ready").port("metrics", tcp, 9090).obj()
	bad.Ports = append(bad.Ports, discoveryv1.EndpointPort{Name: ptr.To("broken")})
	slices := []*discoveryv1.EndpointSlice{bad, makeSlice("ns", "fine-1", "fine").port("", tcp, 80).ep("10.244.0.10", "node-a", "ready").obj()}
	rules, problems := render(t, me, renderContext{}, svcs, slices)
	wantProblems := []string{`"not-an-ip" is not an IPv4 address`, `"fd00::9" is not an IPv4 address`, `port "metrics" (TCP) matches no port`,
		`port "broken" has no valid port number`, `no IPv4 cluster IP (fd00::40)`}
	all := strings.Join(problems, "\n")
	for _, w := range wantProblems {
		if !strings.Contains(all, w) {
			t.Errorf("problems do not mention %q:\n%s", w, all)
		}
	}
	if _, ok := rules["ns/v6only/tcp/"]; ok {
		t.Errorf("IPv6-only Service was rendered")
	}
	mixed := rules["ns/mixed/tcp/http"]
	if mixed == nil || len(mixed.endpoints) != 1 || mixed.endpoints[0].ip != "10.244.0.9" {
		t.Errorf("mixed Service should keep its one valid endpoint, got %+v", mixed)
	}
	dump, _, _ := fullDump(t, rules, nil)
	for _, want := range []string{"10.96.0.41 . tcp . 80 : goto service-", "10.244.0.10 . 80", "10.244.0.9 . 8080"} {
		if !strings.Contains(dump, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}
