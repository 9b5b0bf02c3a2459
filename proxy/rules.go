package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
)

// Names of the fixed objects of the table.
const (
	serviceIPsMap          = "service-ips"
	serviceNodePortsMap    = "service-nodeports"
	noEndpointServicesMap  = "no-endpoint-services"
	noEndpointNodePortsMap = "no-endpoint-nodeports"
	nodePortIPsSet         = "nodeport-ips"
	clusterIPsSet          = "cluster-ips"
	hairpinSet             = "hairpin-connections"
	serviceCIDRsSet        = "service-cidrs"
	markForMasqueradeChain = "mark-for-masquerade"
	rejectChain            = "reject-chain"
)

// renderContext is what rule rendering needs besides the service port.
type renderContext struct {
	// clusterCIDRs, as nft set syntax ("10.0.0.0/16" or "{ a, b }"); "" when unknown.
	clusterCIDRs  string
	masqueradeAll bool
	roundRobin    bool
}

// serviceRules is everything one service port puts into the table.
type serviceRules struct {
	// chains maps each chain of the port to its rules, in order, while the
	// rules are being written; once in the kernel only digests stays, one
	// hash per chain, which is all a later partial sync compares against
	// (a full sync renders everything anew). With 100,000 endpoints the rule
	// text would otherwise be most of the proxy's memory.
	chains  map[string][]string
	digests map[string]uint64
	// elements maps a map (or set) of the skeleton to key -> value ("" for
	// sets) while being written; compacted, they become frozen, sorted by
	// map and key (a slice costs a third of the maps, which add up to tens
	// of MB at 100,000 endpoints).
	elements map[string]map[string]string
	frozen   []element
	// affinitySets maps each session-affinity set to its timeout in seconds.
	affinitySets map[string]int32

	// What the proxier needs besides the table.
	udp          bool
	destinations []string // cluster IP, external and load-balancer IPs
	nodePort     int32
	endpoints    []endpoint // every endpoint traffic may be sent to
	hasEndpoints bool
	healthCheck  int32 // healthCheckNodePort, 0 when none
	localReady   int
}

func newServiceRules() *serviceRules {
	return &serviceRules{chains: map[string][]string{}, elements: map[string]map[string]string{}, affinitySets: map[string]int32{}}
}

// has reports whether the port has the chain name.
func (r *serviceRules) has(name string) bool {
	if r.digests != nil {
		_, ok := r.digests[name]
		return ok
	}
	_, ok := r.chains[name]
	return ok
}

// sameChain reports whether chain name holds rules here.
func (r *serviceRules) sameChain(name string, rules []string) bool {
	if r.digests != nil {
		d, ok := r.digests[name]
		return ok && d == digest(rules)
	}
	prev, ok := r.chains[name]
	return ok && slices.Equal(prev, rules)
}

// chainNames lists the port's chains.
func (r *serviceRules) chainNames() []string {
	if r.digests != nil {
		return slices.Collect(maps.Keys(r.digests))
	}
	return slices.Collect(maps.Keys(r.chains))
}

// element is one element of a map (or set, value "") of the skeleton.
type element struct{ m, key, value string }

func compareElements(a, b element) int {
	if c := strings.Compare(a.m, b.m); c != 0 {
		return c
	}
	return strings.Compare(a.key, b.key)
}

// lookup returns the value of key in map m.
func (r *serviceRules) lookup(m, key string) (string, bool) {
	if r.elements != nil {
		v, ok := r.elements[m][key]
		return v, ok
	}
	i, ok := slices.BinarySearchFunc(r.frozen, element{m: m, key: key}, compareElements)
	if !ok {
		return "", false
	}
	return r.frozen[i].value, true
}

// eachElement calls fn for every element, compacted or not.
func (r *serviceRules) eachElement(fn func(m, key, value string)) {
	for m, elems := range r.elements {
		for key, value := range elems {
			fn(m, key, value)
		}
	}
	for _, e := range r.frozen {
		fn(e.m, e.key, e.value)
	}
}

// compact keeps digests of the chains instead of their rules, and freezes
// the elements.
func (r *serviceRules) compact() {
	if r.digests != nil {
		return
	}
	r.digests = make(map[string]uint64, len(r.chains))
	for name, rules := range r.chains {
		r.digests[name] = digest(rules)
	}
	r.chains = nil
	n := 0
	for _, elems := range r.elements {
		n += len(elems)
	}
	frozen := make([]element, 0, n)
	for m, elems := range r.elements {
		for key, value := range elems {
			frozen = append(frozen, element{m, key, value})
		}
	}
	slices.SortFunc(frozen, compareElements)
	r.frozen = frozen
	r.elements = nil
}

func digest(rules []string) uint64 {
	h := fnv.New64a()
	for _, rule := range rules {
		h.Write([]byte(rule))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func (r *serviceRules) element(m, key, value string) {
	if r.elements[m] == nil {
		r.elements[m] = map[string]string{}
	}
	r.elements[m][key] = value
}

// chainName makes a unique, readable chain name: a hash of the full name keeps
// names unique and lets nft sort them, the rest says what the chain is for.
func chainName(prefix, name string) string {
	sum := sha256.Sum256([]byte(prefix + name))
	return prefix + "-" + base32.StdEncoding.EncodeToString(sum[:5]) + "-" + name
}

func endpointChainName(sp *servicePort, e endpoint) string {
	return chainName("endpoint", fmt.Sprintf("%s__%s/%d", sp.name.key(), e.ip, e.port))
}

func affinitySetName(sp *servicePort, e endpoint) string {
	return chainName("affinity", fmt.Sprintf("%s__%s/%d", sp.name.key(), e.ip, e.port))
}

// renderServicePort computes the rules of one service port. It is a pure
// function of its inputs so that what reaches the kernel can be tested
// without one.
func renderServicePort(sp *servicePort, choice endpointChoice, rc renderContext) *serviceRules {
	r := newServiceRules()
	proto := strings.ToLower(string(sp.name.Protocol))
	r.udp = proto == "udp"
	r.nodePort = sp.nodePort
	r.healthCheck = sp.healthCheckNodePort
	r.localReady = choice.localReady
	r.destinations = append(append([]string{sp.clusterIP}, sp.externalIPs...), sp.loadBalancerIPs...)
	r.hasEndpoints = len(choice.cluster) > 0
	// The cluster IP is known (other ports of it are refused, not dropped):
	// one element per Service, from its first port.
	if sp.firstPort {
		r.element(clusterIPsSet, sp.clusterIP, "")
	}
	key := func(ip string, port int32) string { return fmt.Sprintf("%s . %s . %d", ip, proto, port) }
	nodePortKey := fmt.Sprintf("%s . %d", proto, sp.nodePort)
	reject := "goto " + rejectChain

	// No endpoint at all: every destination of the port is refused at once
	// (ICMP unreachable), so clients fail fast instead of timing out.
	if len(choice.cluster) == 0 {
		for _, ip := range r.destinations {
			r.element(noEndpointServicesMap, key(ip, sp.port), reject)
		}
		if sp.nodePort != 0 {
			r.element(noEndpointNodePortsMap, nodePortKey, reject)
		}
		return r
	}

	used := map[string]endpoint{}
	gen := "random"
	if rc.roundRobin {
		gen = "inc"
	}
	// balance picks an endpoint. Without affinity the chain DNATs through a
	// numgen-indexed map, no chain per endpoint: a Service with 10,000
	// endpoints is one rule, and a full sync writes one chain per Service
	// port. With ClientIP affinity each endpoint keeps a chain of its own,
	// which remembers the client in the endpoint's set.
	dispatches := 0
	balance := func(eps []endpoint) []string {
		for _, e := range eps {
			used[e.String()] = e
		}
		sub := dispatches
		dispatches++
		if sp.affinityTimeout == 0 && sp.slot.ok && len(eps) <= 1<<subRangeBits {
			m, base := sp.slot.m, sp.slot.offset(sub)
			for i, e := range eps {
				r.element(m, fmt.Sprint(base+uint32(i)), fmt.Sprintf("%s . %d", e.ip, e.port))
			}
			return []string{fmt.Sprintf("meta l4proto %s dnat ip to numgen %s mod %d offset %d map @%s", proto, gen, len(eps), base, m)}
		}
		if sp.affinityTimeout == 0 {
			targets := make([]string, len(eps))
			for i, e := range eps {
				targets[i] = fmt.Sprintf("%d : %s . %d", i, e.ip, e.port)
			}
			return []string{fmt.Sprintf("meta l4proto %s dnat ip to numgen %s mod %d map { %s }", proto, gen, len(eps), strings.Join(targets, ", "))}
		}
		var rules []string
		for _, e := range eps {
			rules = append(rules, fmt.Sprintf("ip saddr @%s goto %s", affinitySetName(sp, e), endpointChainName(sp, e)))
		}
		targets := make([]string, len(eps))
		for i, e := range eps {
			targets[i] = fmt.Sprintf("%d : goto %s", i, endpointChainName(sp, e))
		}
		return append(rules, fmt.Sprintf("numgen %s mod %d vmap { %s }", gen, len(eps), strings.Join(targets, " , ")))
	}

	// Traffic to the cluster IP.
	internal := choice.internal(sp)
	serviceChain := chainName("service", sp.name.key())
	if len(internal) > 0 {
		var rules []string
		switch {
		case rc.masqueradeAll:
			rules = append(rules, "jump "+markForMasqueradeChain)
		case rc.clusterCIDRs != "":
			// From outside the pod network (the host, another node): replies
			// must come back through this node to be un-DNATed.
			rules = append(rules, fmt.Sprintf("ip saddr != %s jump %s", rc.clusterCIDRs, markForMasqueradeChain))
		}
		r.chains[serviceChain] = append(rules, balance(internal)...)
		r.element(serviceIPsMap, key(sp.clusterIP, sp.port), "goto "+serviceChain)
	} else {
		// internalTrafficPolicy Local without a local endpoint: dropped, as
		// kube-proxy does (other nodes' endpoints must not be used).
		r.element(noEndpointServicesMap, key(sp.clusterIP, sp.port), "drop")
	}

	// Traffic from outside: NodePorts, external IPs, load-balancer IPs.
	if sp.hasExternal() {
		clusterPath := serviceChain
		if sp.internalLocal {
			clusterPath = chainName("cluster", sp.name.key())
			r.chains[clusterPath] = balance(choice.cluster)
		}
		external := chainName("external", sp.name.key())
		var rules []string
		if !sp.externalLocal {
			rules = []string{"jump " + markForMasqueradeChain, "goto " + clusterPath}
		} else {
			// Local policy keeps the client's source address, so only this
			// node's endpoints may answer; pods and the node itself still
			// reach every endpoint, as with the Cluster policy.
			if rc.clusterCIDRs != "" {
				rules = append(rules, fmt.Sprintf("ip saddr %s goto %s", rc.clusterCIDRs, clusterPath))
			}
			rules = append(rules,
				"fib saddr type local jump "+markForMasqueradeChain,
				"fib saddr type local goto "+clusterPath)
			if len(choice.local) > 0 {
				rules = append(rules, balance(choice.local)...)
			} else {
				rules = append(rules, "drop")
			}
		}
		r.chains[external] = rules
		for _, ip := range append(append([]string{}, sp.externalIPs...), sp.loadBalancerIPs...) {
			r.element(serviceIPsMap, key(ip, sp.port), "goto "+external)
		}
		if sp.nodePort != 0 {
			r.element(serviceNodePortsMap, nodePortKey, "goto "+external)
		}
	}

	for _, id := range slices.Sorted(maps.Keys(used)) {
		e := used[id]
		// Hairpin: a pod reaching itself through the Service must see a
		// source other than its own address, or its reply never leaves it;
		// postrouting masquerades the connections in this set.
		r.element(hairpinSet, fmt.Sprintf("%s . %s . %s . %d", e.ip, e.ip, proto, e.port), "")
		r.endpoints = append(r.endpoints, e)
		if sp.affinityTimeout > 0 {
			set := affinitySetName(sp, e)
			r.affinitySets[set] = sp.affinityTimeout
			r.chains[endpointChainName(sp, e)] = []string{
				fmt.Sprintf("update @%s { ip saddr }", set),
				fmt.Sprintf("meta l4proto %s dnat to %s", proto, e.String()),
			}
		}
	}
	return r
}

// cidrSet renders CIDRs as an nft match operand.
func cidrSet(cidrs []string) string {
	switch len(cidrs) {
	case 0:
		return ""
	case 1:
		return cidrs[0]
	}
	return "{ " + strings.Join(cidrs, ", ") + " }"
}
