package cloud

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/klog/v2"
)

// ParsePool checks a --load-balancer-cidr: IPv4, at most a /16 (65,536
// addresses is already more load balancers than one machine wants).
func ParsePool(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, err
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, errors.New("only IPv4 pools are supported")
	}
	if p.Bits() < 16 {
		return netip.Prefix{}, errors.New("a pool is at most a /16")
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("not a network address (did you mean %s?)", p.Masked())
	}
	return p, nil
}

// poolAddrs lists the pool's usable addresses: all but the network and
// broadcast addresses, except in a /31 or /32 where every one is usable.
func poolAddrs(p netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for a := p.Addr(); p.Contains(a); a = a.Next() {
		out = append(out, a)
	}
	if p.Bits() <= 30 {
		out = out[1 : len(out)-1]
	}
	return out
}

// lbPort is one port a load balancer forwards, to the Service's node port.
type lbPort struct {
	protocol corev1.Protocol
	port     int32
	nodePort int32
}

// backend is a node a load balancer may send to.
type backend struct {
	node string
	ip   netip.Addr
	// machine: the node is the machine the load balancer runs on, whose own
	// proxy takes the traffic as it is (the kernel NATs a connection once,
	// so it cannot be sent to its own node port and NATed again there).
	machine bool
}

// lb is one load balancer.
type lb struct {
	name, service string // GetLoadBalancerName; namespace/name for messages
	ip            netip.Addr
	ports         []lbPort
	backends      []backend
	// healthCheckPort: externalTrafficPolicy Local; only backends whose
	// health check node port answers 200 get traffic.
	healthCheckPort int32
	programmed      bool // false while only learnt from a Service's status
}

// dataplane makes the machine forward what the load balancers say.
type dataplane interface {
	sync(ctx context.Context, lbs []lbView) error
}

// lbView is a load balancer as the dataplane sees it: its backends are
// the ones to send to now.
type lbView struct {
	name     string
	ip       netip.Addr
	ports    []lbPort
	backends []backend
}

// loadBalancers implements cloudprovider.LoadBalancer.
type loadBalancers struct {
	pool      netip.Prefix
	inventory func() (*Inventory, error)
	dp        dataplane
	health    *healthChecks

	mu     sync.Mutex
	byName map[string]*lb
}

func newLoadBalancers(pool netip.Prefix, inv func() (*Inventory, error), dp dataplane) *loadBalancers {
	return &loadBalancers{pool: pool, inventory: inv, dp: dp, health: newHealthChecks(), byName: map[string]*lb{}}
}

var _ cloudprovider.LoadBalancer = &loadBalancers{}

// prime learns the addresses Services hold already (after a restart).
func (l *loadBalancers) prime(ctx context.Context, client kubernetes.Interface) error {
	list, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range list.Items {
		svc := &list.Items[i]
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.LoadBalancerClass != nil {
			continue
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(ing.IP); err == nil && l.pool.Contains(a) && l.holder(a) == "" {
				name := cloudprovider.DefaultLoadBalancerName(svc)
				l.byName[name] = &lb{name: name, service: svc.Namespace + "/" + svc.Name, ip: a}
				break
			}
		}
	}
	return nil
}

// holder names the load balancer holding a ("" if none). Callers hold mu.
func (l *loadBalancers) holder(a netip.Addr) string {
	for name, b := range l.byName {
		if b.ip == a {
			return name
		}
	}
	return ""
}

// assign picks the Service's address: the one it asks for
// (spec.loadBalancerIP), else the one it has, else the first free one.
// Callers hold mu.
func (l *loadBalancers) assign(svc *corev1.Service, name string) (netip.Addr, error) {
	taken := func(a netip.Addr) error {
		if h := l.holder(a); h != "" && h != name {
			return fmt.Errorf("load-balancer address %s is already used by Service %s: kubeparts load balancers do not share addresses", a, l.byName[h].service)
		}
		return nil
	}
	if want := svc.Spec.LoadBalancerIP; want != "" {
		a, err := netip.ParseAddr(want)
		if err != nil || !a.Is4() {
			return netip.Addr{}, fmt.Errorf("spec.loadBalancerIP %q is not an IPv4 address", want)
		}
		if !l.pool.Contains(a) {
			return netip.Addr{}, fmt.Errorf("spec.loadBalancerIP %s is outside the load-balancer pool %s", a, l.pool)
		}
		return a, taken(a)
	}
	if cur, ok := l.byName[name]; ok {
		return cur.ip, nil
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil && l.pool.Contains(a) && taken(a) == nil {
			return a, nil
		}
	}
	addrs := poolAddrs(l.pool)
	for _, a := range addrs {
		if l.holder(a) == "" {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("the load-balancer pool %s is exhausted: all %d addresses are in use", l.pool, len(addrs))
}

func (l *loadBalancers) GetLoadBalancerName(_ context.Context, _ string, svc *corev1.Service) string {
	return cloudprovider.DefaultLoadBalancerName(svc)
}

func (l *loadBalancers) GetLoadBalancer(_ context.Context, _ string, svc *corev1.Service) (*corev1.LoadBalancerStatus, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.byName[cloudprovider.DefaultLoadBalancerName(svc)]
	if !ok || !b.programmed {
		return nil, false, nil
	}
	return status(b.ip), true, nil
}

func status(ip netip.Addr) *corev1.LoadBalancerStatus {
	vip := corev1.LoadBalancerIPModeVIP
	return &corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ip.String(), IPMode: &vip}}}
}

func (l *loadBalancers) EnsureLoadBalancer(ctx context.Context, _ string, svc *corev1.Service, nodes []*corev1.Node) (*corev1.LoadBalancerStatus, error) {
	b, err := l.ensure(ctx, svc, nodes)
	if err != nil {
		return nil, err
	}
	return status(b.ip), nil
}

func (l *loadBalancers) UpdateLoadBalancer(ctx context.Context, _ string, svc *corev1.Service, nodes []*corev1.Node) error {
	_, err := l.ensure(ctx, svc, nodes)
	return err
}

func (l *loadBalancers) ensure(ctx context.Context, svc *corev1.Service, nodes []*corev1.Node) (*lb, error) {
	ports, err := servicePorts(svc)
	if err != nil {
		return nil, err
	}
	machine := map[string]bool{}
	if inv, err := l.inventory(); err == nil {
		for _, h := range inv.Hosts {
			machine[h.Name] = h.NetNS == ""
		}
	}
	var backends []backend
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP && ip.Is4() {
				backends = append(backends, backend{node: n.Name, ip: ip, machine: machine[n.Name]})
				break
			}
		}
	}
	slices.SortFunc(backends, func(a, b backend) int { return strings.Compare(a.node, b.node) })
	name := cloudprovider.DefaultLoadBalancerName(svc)
	b := &lb{name: name, service: svc.Namespace + "/" + svc.Name, ports: ports, backends: backends, programmed: true}
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		b.healthCheckPort = svc.Spec.HealthCheckNodePort
		// Check now, so the first programming already leaves out the
		// nodes without a ready local endpoint.
		l.health.probe(ctx, b)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if b.ip, err = l.assign(svc, name); err != nil {
		return nil, err
	}
	old, had := l.byName[name]
	l.byName[name] = b
	if err := l.syncLocked(ctx); err != nil {
		if had {
			l.byName[name] = old
		} else {
			delete(l.byName, name)
		}
		return nil, err
	}
	klog.V(2).InfoS("Load balancer programmed", "service", b.service, "ip", b.ip, "backends", len(b.backends))
	return b, nil
}

// servicePorts are the ports to forward, each to its node port.
func servicePorts(svc *corev1.Service) ([]lbPort, error) {
	if len(svc.Spec.IPFamilies) > 0 && !slices.Contains(svc.Spec.IPFamilies, corev1.IPv4Protocol) {
		return nil, fmt.Errorf("the Service has no IPv4 family (%v): kubeparts load balancers are IPv4 only", svc.Spec.IPFamilies)
	}
	var ports []lbPort
	for _, p := range svc.Spec.Ports {
		if p.NodePort == 0 {
			return nil, fmt.Errorf("port %d/%s has no node port: kubeparts load balancers forward to node ports (do not set allocateLoadBalancerNodePorts: false)", p.Port, p.Protocol)
		}
		ports = append(ports, lbPort{protocol: p.Protocol, port: p.Port, nodePort: p.NodePort})
	}
	return ports, nil
}

func (l *loadBalancers) EnsureLoadBalancerDeleted(ctx context.Context, _ string, svc *corev1.Service) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	name := cloudprovider.DefaultLoadBalancerName(svc)
	old, ok := l.byName[name]
	if !ok {
		return nil
	}
	delete(l.byName, name)
	if err := l.syncLocked(ctx); err != nil {
		l.byName[name] = old
		return err
	}
	l.health.forget(name)
	klog.V(2).InfoS("Load balancer deleted", "service", old.service, "ip", old.ip)
	return nil
}

// syncLocked programs every load balancer. Callers hold mu.
func (l *loadBalancers) syncLocked(ctx context.Context) error {
	var views []lbView
	for _, name := range slices.Sorted(maps.Keys(l.byName)) {
		b := l.byName[name]
		if !b.programmed {
			continue
		}
		views = append(views, lbView{name: name, ip: b.ip, ports: b.ports, backends: l.health.healthy(b)})
	}
	return l.dp.sync(ctx, views)
}

// run re-checks the health check node ports of the Local load balancers
// every healthInterval and reprograms when a node starts or stops passing.
func (l *loadBalancers) run(ctx context.Context) {
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		var local []*lb
		for _, b := range l.byName {
			if b.programmed && b.healthCheckPort != 0 {
				local = append(local, b)
			}
		}
		l.mu.Unlock()
		changed := false
		for _, b := range local {
			if l.health.probe(ctx, b) {
				changed = true
			}
		}
		if changed {
			l.mu.Lock()
			if err := l.syncLocked(ctx); err != nil {
				klog.ErrorS(err, "Reprogramming load balancers after a health change failed")
			}
			l.mu.Unlock()
		}
	}
}
