package proxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// servicePortName names one port of a Service, as kube-proxy keys its rules.
type servicePortName struct {
	types.NamespacedName
	Port     string
	Protocol corev1.Protocol
}

// key is the readable part of the chain names: namespace/name/protocol/port.
func (n servicePortName) key() string {
	return fmt.Sprintf("%s/%s/%s/%s", n.Namespace, n.Name, strings.ToLower(string(n.Protocol)), n.Port)
}

func (n servicePortName) String() string {
	return fmt.Sprintf("%s/%s:%s", n.Namespace, n.Name, n.Port)
}

// servicePort is what the rules need of one port of a Service.
type servicePort struct {
	name      servicePortName
	clusterIP string // IPv4; "" for a Service kubeparts-proxy does not program
	port      int32
	nodePort  int32
	// externalIPs and loadBalancerIPs are IPv4 destinations that reach the
	// Service from outside (spec.externalIPs and status.loadBalancer.ingress).
	externalIPs     []string
	loadBalancerIPs []string
	// affinityTimeout is sessionAffinity ClientIP's timeout in seconds, 0 without affinity.
	affinityTimeout     int32
	externalLocal       bool // externalTrafficPolicy: Local
	internalLocal       bool // internalTrafficPolicy: Local
	healthCheckNodePort int32
	// topologyAware: the Service asks for topology-aware routing (trafficDistribution
	// or the topology-mode annotation), so endpoint hints are honoured.
	topologyAware bool
	// firstPort: the Service's first port, which speaks for the Service as a whole.
	firstPort bool
	// slot is where the port's endpoints go in the endpoint maps (set by
	// the proxier; without one the port dispatches through an anonymous map).
	slot endpointSlot
}

// hasExternal reports whether traffic can reach the port from outside the cluster.
func (sp *servicePort) hasExternal() bool {
	return sp.nodePort != 0 || len(sp.externalIPs) > 0 || len(sp.loadBalancerIPs) > 0
}

// endpoint is one backend of a service port.
type endpoint struct {
	ip                          string
	port                        int32
	ready, serving, terminating bool
	nodeName                    string
	zoneHints, nodeHints        []string
}

func (e endpoint) String() string { return fmt.Sprintf("%s:%d", e.ip, e.port) }

// topologyModeAnnotation is the older way to ask for topology-aware routing.
const topologyModeAnnotation = "service.kubernetes.io/topology-mode"

// servicePorts converts a Service into the ports to program. Services that have
// no virtual IP (headless, ExternalName) give none and no problem; a Service that
// kubeparts-proxy cannot serve gives a problem, which the caller reports.
func servicePorts(svc *corev1.Service) ([]*servicePort, string) {
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.ClusterIP == "" {
		return nil, ""
	}
	clusterIP := ""
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip); err == nil && a.Is4() {
			clusterIP = a.String()
			break
		}
	}
	if clusterIP == "" {
		return nil, fmt.Sprintf("Service has no IPv4 cluster IP (%s): kubeparts-proxy serves IPv4 only, so the Service is not programmed", strings.Join(ips, ", "))
	}
	var externalIPs, lbIPs []string
	for _, ip := range svc.Spec.ExternalIPs {
		if a, err := netip.ParseAddr(ip); err == nil && a.Is4() {
			externalIPs = append(externalIPs, a.String())
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			// ipMode Proxy: the load balancer itself proxies, traffic arrives
			// addressed to the node, not to this IP; kube-proxy leaves it alone.
			if ing.IPMode != nil && *ing.IPMode == corev1.LoadBalancerIPModeProxy {
				continue
			}
			if a, err := netip.ParseAddr(ing.IP); err == nil && a.Is4() {
				lbIPs = append(lbIPs, a.String())
			}
		}
	}
	var affinity int32
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		affinity = corev1.DefaultClientIPServiceAffinitySeconds
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			affinity = *c.ClientIP.TimeoutSeconds
		}
	}
	externalLocal := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal &&
		(svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer || len(externalIPs) > 0)
	internalLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
	topology := svc.Spec.TrafficDistribution != nil
	if v := svc.Annotations[topologyModeAnnotation]; v != "" && !strings.EqualFold(v, "disabled") {
		topology = true
	}
	var out []*servicePort
	for i, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		sp := &servicePort{
			name:            servicePortName{NamespacedName: types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}, Port: p.Name, Protocol: proto},
			clusterIP:       clusterIP,
			port:            p.Port,
			externalIPs:     externalIPs,
			loadBalancerIPs: lbIPs,
			affinityTimeout: affinity,
			externalLocal:   externalLocal,
			internalLocal:   internalLocal,
			topologyAware:   topology,
			firstPort:       i == 0,
		}
		if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			sp.nodePort = p.NodePort
		}
		if externalLocal {
			sp.healthCheckNodePort = svc.Spec.HealthCheckNodePort
		}
		out = append(out, sp)
	}
	return out, ""
}

// sliceEndpoints collects the endpoints of a Service's EndpointSlices per port
// name and protocol. Addresses that are not IPv4 addresses and ports without a
// number are skipped and reported; slices of other address types are ignored
// (an IPv6 slice of a dual-stack Service is not an error). An address listed in
// several slices (while the EndpointSlice controller moves it) counts once, the
// ready copy first.
func sliceEndpoints(slicesOfService []*discoveryv1.EndpointSlice, ports []*servicePort) (map[servicePortName][]endpoint, []string) {
	out := map[servicePortName][]endpoint{}
	var problems []string
	wanted := map[string]*servicePort{}
	// Where each address and port already is in out: a Service of 10,000
	// endpoints must not be deduplicated by scanning.
	type addrPort struct {
		ip   string
		port int32
	}
	index := map[servicePortName]map[addrPort]int{}
	for _, sp := range ports {
		wanted[sp.name.Port+"/"+string(sp.name.Protocol)] = sp
	}
	for _, slice := range slicesOfService {
		if slice.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, p := range slice.Ports {
			name, proto := "", corev1.ProtocolTCP
			if p.Name != nil {
				name = *p.Name
			}
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			if p.Port == nil || *p.Port < 1 || *p.Port > 65535 {
				problems = append(problems, fmt.Sprintf("EndpointSlice %s: port %q has no valid port number; its endpoints are skipped", slice.Name, name))
				continue
			}
			sp := wanted[name+"/"+string(proto)]
			if sp == nil {
				problems = append(problems, fmt.Sprintf("EndpointSlice %s: port %q (%s) matches no port of the Service; it is ignored", slice.Name, name, proto))
				continue
			}
			for _, ep := range slice.Endpoints {
				if len(ep.Addresses) == 0 {
					continue
				}
				a, err := netip.ParseAddr(ep.Addresses[0])
				if err != nil || !a.Is4() {
					problems = append(problems, fmt.Sprintf("EndpointSlice %s: endpoint address %q is not an IPv4 address; it is skipped", slice.Name, ep.Addresses[0]))
					continue
				}
				e := endpoint{ip: a.String(), port: *p.Port}
				e.ready = ep.Conditions.Ready == nil || *ep.Conditions.Ready
				e.serving = e.ready
				if ep.Conditions.Serving != nil {
					e.serving = *ep.Conditions.Serving
				}
				e.terminating = ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
				if ep.NodeName != nil {
					e.nodeName = *ep.NodeName
				}
				if ep.Hints != nil {
					for _, z := range ep.Hints.ForZones {
						e.zoneHints = append(e.zoneHints, z.Name)
					}
					for _, n := range ep.Hints.ForNodes {
						e.nodeHints = append(e.nodeHints, n.Name)
					}
				}
				list, at := out[sp.name], index[sp.name]
				if at == nil {
					at = map[addrPort]int{}
					index[sp.name] = at
				}
				if i, ok := at[addrPort{e.ip, e.port}]; ok {
					if !list[i].ready && e.ready {
						list[i] = e
					}
					continue
				}
				at[addrPort{e.ip, e.port}] = len(list)
				out[sp.name] = append(list, e)
			}
		}
	}
	for name := range out {
		slices.SortFunc(out[name], func(a, b endpoint) int {
			if c := netip.MustParseAddr(a.ip).Compare(netip.MustParseAddr(b.ip)); c != 0 {
				return c
			}
			return int(a.port - b.port)
		})
	}
	slices.Sort(problems)
	problems = slices.Compact(problems)
	return out, problems
}
