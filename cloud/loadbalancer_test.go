package cloud

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/knftables"
)

// recordingDataplane keeps what the load balancers last asked for.
type recordingDataplane struct {
	mu   sync.Mutex
	last []lbView
	fail error
}

func (r *recordingDataplane) sync(_ context.Context, lbs []lbView) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.last = lbs
	return nil
}

func lbService(name string, mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{
			{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, NodePort: 30080}}},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func node(name, ip string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
}

func testInventory() (*Inventory, error) {
	return &Inventory{Cluster: "c1", Region: "local", Hosts: []Host{
		{Name: "n0", InternalIP: "192.168.1.10", Zone: "a", InstanceType: "kubeparts-machine"},
		{Name: "n1", InternalIP: "100.64.0.2", Zone: "b", InstanceType: "kubeparts-netns", NetNS: "kp-test-w1"},
	}}, nil
}

func TestPoolAddresses(t *testing.T) {
	for _, tc := range []struct {
		cidr    string
		want    []string
		wantErr string
	}{
		{cidr: "172.31.0.0/30", want: []string{"172.31.0.1", "172.31.0.2"}},
		{cidr: "172.31.0.4/31", want: []string{"172.31.0.4", "172.31.0.5"}},
		{cidr: "172.31.0.9/32", want: []string{"172.31.0.9"}},
		{cidr: "172.31.0.1/24", wantErr: "not a network address (did you mean 172.31.0.0/24?)"},
		{cidr: "10.0.0.0/8", wantErr: "at most a /16"},
		{cidr: "fd00::/120", wantErr: "only IPv4"},
		{cidr: "nonsense", wantErr: "ParsePrefix"},
	} {
		p, err := ParsePool(tc.cidr)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.cidr, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.cidr, err)
		}
		var got []string
		for _, a := range poolAddrs(p) {
			got = append(got, a.String())
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: addresses %v, want %v", tc.cidr, got, tc.want)
		}
	}
}

// TestLoadBalancerAddresses: addresses are handed out, kept, asked for,
// refused when taken or outside the pool, released on delete, and a full
// pool is an error rather than a crash.
func TestLoadBalancerAddresses(t *testing.T) {
	ctx := context.Background()
	dp := &recordingDataplane{}
	pool, _ := ParsePool("172.31.0.0/30") // two usable addresses
	l := newLoadBalancers(pool, testInventory, dp)
	nodes := []*corev1.Node{node("n1", "100.64.0.2"), node("n0", "192.168.1.10")}

	ensure := func(svc *corev1.Service) (string, error) {
		st, err := l.EnsureLoadBalancer(ctx, "c1", svc, nodes)
		if err != nil {
			return "", err
		}
		if len(st.Ingress) != 1 || st.Ingress[0].IPMode == nil || *st.Ingress[0].IPMode != corev1.LoadBalancerIPModeVIP {
			t.Fatalf("status %+v: want one VIP ingress", st)
		}
		return st.Ingress[0].IP, nil
	}
	steps := []struct {
		name    string
		svc     *corev1.Service
		delete  bool
		wantIP  string
		wantErr string
	}{
		{name: "first address", svc: lbService("a"), wantIP: "172.31.0.1"},
		{name: "same Service keeps it", svc: lbService("a"), wantIP: "172.31.0.1"},
		{name: "asked-for address taken", svc: lbService("b", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "172.31.0.1" }),
			wantErr: "172.31.0.1 is already used by Service default/a"},
		{name: "asked-for address outside the pool", svc: lbService("b", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "10.9.9.9" }),
			wantErr: "outside the load-balancer pool 172.31.0.0/30"},
		{name: "asked-for address not an address", svc: lbService("b", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "x" }),
			wantErr: `"x" is not an IPv4 address`},
		{name: "next free address", svc: lbService("b"), wantIP: "172.31.0.2"},
		{name: "pool exhausted", svc: lbService("c"), wantErr: "pool 172.31.0.0/30 is exhausted: all 2 addresses are in use"},
		{name: "no node port", svc: lbService("d", func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 0 }), wantErr: "has no node port"},
		{name: "IPv6 only", svc: lbService("e", func(s *corev1.Service) { s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol} }), wantErr: "IPv4 only"},
		{name: "delete releases", svc: lbService("a"), delete: true},
		{name: "released address reused", svc: lbService("c"), wantIP: "172.31.0.1"},
	}
	for _, s := range steps {
		if s.delete {
			if err := l.EnsureLoadBalancerDeleted(ctx, "c1", s.svc); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if _, exists, _ := l.GetLoadBalancer(ctx, "c1", s.svc); exists {
				t.Errorf("%s: load balancer still exists", s.name)
			}
			continue
		}
		ip, err := ensure(s.svc)
		if s.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Errorf("%s: error %v, want %q", s.name, err, s.wantErr)
			}
			continue
		}
		if err != nil || ip != s.wantIP {
			t.Errorf("%s: got %s, %v; want %s", s.name, ip, err, s.wantIP)
		}
	}
	// What the dataplane was last told: b and c, backends sorted by node,
	// the machine's own node marked.
	if len(dp.last) != 2 {
		t.Fatalf("dataplane has %d load balancers, want 2", len(dp.last))
	}
	for _, v := range dp.last {
		if len(v.backends) != 2 || v.backends[0].node != "n0" || !v.backends[0].machine || v.backends[1].machine {
			t.Errorf("%s backends %+v: want n0 (the machine) then n1", v.name, v.backends)
		}
	}

	// A failing dataplane leaves nothing half-done: no address is taken.
	dp.fail = context.DeadlineExceeded
	if _, err := ensure(lbService("f", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "172.31.0.2" })); err == nil {
		t.Error("ensure succeeded on a failing dataplane")
	}
	if _, exists, _ := l.GetLoadBalancer(ctx, "c1", lbService("f")); exists {
		t.Error("a load balancer whose programming failed exists")
	}
}

// TestLoadBalancerRestart: after a restart, the addresses Services hold
// are theirs again and not handed to others.
func TestLoadBalancerRestart(t *testing.T) {
	pool, _ := ParsePool("172.31.0.0/30")
	l := newLoadBalancers(pool, testInventory, &recordingDataplane{})
	held := lbService("held", func(s *corev1.Service) {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "172.31.0.1"}}
	})
	l.mu.Lock()
	l.byName["a"+"uidheld"] = &lb{name: "auidheld", service: "default/held", ip: netip.MustParseAddr("172.31.0.1")}
	l.mu.Unlock()
	st, err := l.EnsureLoadBalancer(context.Background(), "c1", lbService("new"), nil)
	if err != nil || st.Ingress[0].IP != "172.31.0.2" {
		t.Fatalf("new Service got %v, %v; want 172.31.0.2 (172.31.0.1 is held)", st, err)
	}
	st, err = l.EnsureLoadBalancer(context.Background(), "c1", held, nil)
	if err != nil || st.Ingress[0].IP != "172.31.0.1" {
		t.Fatalf("the holder got %v, %v; want its 172.31.0.1 back", st, err)
	}
}

// TestRenderLoadBalancers: the table forwards each port to a backend's node
// port, leaves the machine's own share to its proxy, and has no entry for
// a load balancer with nothing to send to.
func TestRenderLoadBalancers(t *testing.T) {
	fake := knftables.NewFake(knftables.IPv4Family, "kubeparts-lb")
	views := []lbView{
		{name: "a", ip: netip.MustParseAddr("172.31.0.1"), ports: []lbPort{{corev1.ProtocolTCP, 80, 30080}, {corev1.ProtocolUDP, 53, 30053}},
			backends: []backend{{node: "n0", ip: netip.MustParseAddr("192.168.1.10"), machine: true}, {node: "n1", ip: netip.MustParseAddr("100.64.0.2")}}},
		{name: "b", ip: netip.MustParseAddr("172.31.0.2"), ports: []lbPort{{corev1.ProtocolTCP, 443, 30443}}},
	}
	if err := fake.Run(context.Background(), renderLoadBalancers(fake.NewTransaction(), views)); err != nil {
		t.Fatal(err)
	}
	dump := fake.Dump()
	for _, want := range []string{
		"add chain ip kubeparts-lb output { type nat hook output priority -110 ; }",
		"add chain ip kubeparts-lb prerouting { type nat hook prerouting priority -110 ; }",
		"add rule ip kubeparts-lb output ip daddr . meta l4proto . th dport vmap @lb-ports",
		"meta l4proto tcp dnat to 100.64.0.2:30080",
		"meta l4proto udp dnat to 100.64.0.2:30053",
		"numgen random mod 2 vmap { 0 : accept, 1 : goto node-",
		"add element ip kubeparts-lb lb-ports { 172.31.0.1 . tcp . 80 : goto lb-",
		"add element ip kubeparts-lb lb-ports { 172.31.0.1 . udp . 53 : goto lb-",
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("table lacks %q:\n%s", want, dump)
		}
	}
	if strings.Contains(dump, "172.31.0.2") {
		t.Errorf("a load balancer without backends is in the table:\n%s", dump)
	}
	// Rewriting replaces: a second run with none leaves an empty map.
	if err := fake.Run(context.Background(), renderLoadBalancers(fake.NewTransaction(), nil)); err != nil {
		t.Fatal(err)
	}
	if d := fake.Dump(); strings.Contains(d, "element") || strings.Contains(d, "dnat") {
		t.Errorf("stale rules after rewrite:\n%s", d)
	}
}
