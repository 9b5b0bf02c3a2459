package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// table owns one nftables table (family ip) and knows what it last wrote
// there, so a partial sync writes only what changed. It never touches other
// tables: those of the CNI plugin, the container runtime, iptables-nft or
// another cluster's proxy on the same machine.
type table struct {
	nft     knftables.Interface
	masqBit uint32
	// applied is what the kernel holds per service port key, after the last
	// successful sync.
	applied     map[string]*serviceRules
	nodePortIPs []string
	// setRefs counts the service ports holding each set element ("set|key"):
	// set elements may be shared, map elements may not (the proxier's claims).
	setRefs map[string]int
	// nftCommand is the nft binary full syncs are streamed to ("": through
	// knftables, as tests on its fake do), name the table's.
	nftCommand, name string
}

func newTable(nft knftables.Interface, masqueradeBit int) *table {
	return &table{nft: nft, masqBit: 1 << masqueradeBit, applied: map[string]*serviceRules{}, setRefs: map[string]int{}}
}

// baseChains are the chains of the skeleton, with their hooks and rules.
// The filter chains run before the nat ones of the output hook (-110 < -100),
// so a Service without endpoints is refused before anything rewrites it.
func (t *table) baseChains() []struct {
	chain knftables.Chain
	rules []string
} {
	mark := fmt.Sprintf("0x%x", t.masqBit)
	base := func(name string, typ knftables.BaseChainType, hook knftables.BaseChainHook, prio knftables.BaseChainPriority) knftables.Chain {
		return knftables.Chain{Name: name, Type: ptr.To(typ), Hook: ptr.To(hook), Priority: ptr.To(prio)}
	}
	check := "ct state new jump service-endpoints-check"
	clusterIPs := "ct state new jump cluster-ips-check"
	return []struct {
		chain knftables.Chain
		rules []string
	}{
		{base("nat-prerouting", knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority), []string{"jump services"}},
		{base("nat-output", knftables.NATType, knftables.OutputHook, knftables.DNATPriority), []string{"jump services"}},
		{base("nat-postrouting", knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority), []string{"jump masquerading"}},
		// Input and forward come after prerouting's DNAT: traffic to a
		// Service that answers no longer has its cluster IP as destination.
		{base("filter-input", knftables.FilterType, knftables.InputHook, "-110"), []string{check, clusterIPs}},
		{base("filter-forward", knftables.FilterType, knftables.ForwardHook, "-110"), []string{check, clusterIPs}},
		{base("filter-output", knftables.FilterType, knftables.OutputHook, "-110"), []string{check}},
		// Output's DNAT runs at -100: the cluster IP check waits for it.
		{base("filter-output-post-dnat", knftables.FilterType, knftables.OutputHook, "-90"), []string{clusterIPs}},
		{knftables.Chain{Name: "services"}, []string{
			"ip daddr . meta l4proto . th dport vmap @" + serviceIPsMap,
			"ip daddr @" + nodePortIPsSet + " meta l4proto . th dport vmap @" + serviceNodePortsMap,
		}},
		{knftables.Chain{Name: "service-endpoints-check"}, []string{
			"ip daddr . meta l4proto . th dport vmap @" + noEndpointServicesMap,
			"ip daddr @" + nodePortIPsSet + " meta l4proto . th dport vmap @" + noEndpointNodePortsMap,
		}},
		// What is left addressed to the service range matched no Service
		// port: a known cluster IP on another port is refused, an address
		// no Service holds is dropped (never routed out of the node).
		{knftables.Chain{Name: "cluster-ips-check"}, []string{
			"ip daddr @" + clusterIPsSet + " goto " + rejectChain,
			"ip daddr @" + serviceCIDRsSet + " drop",
		}},
		{knftables.Chain{Name: markForMasqueradeChain}, []string{"meta mark set meta mark | " + mark}},
		{knftables.Chain{Name: "masquerading"}, []string{
			"ct status dnat ip saddr . ip daddr . meta l4proto . th dport @" + hairpinSet + " masquerade fully-random",
			fmt.Sprintf("meta mark & %s == 0 return", mark),
			"meta mark set meta mark ^ " + mark,
			"masquerade fully-random",
		}},
		// TCP gets a reset, as from a closed port: the client fails at once.
		// An ICMP port-unreachable (kube-proxy's) made connect() fail only
		// after the first SYN retransmission here, a second later.
		{knftables.Chain{Name: rejectChain}, []string{"meta l4proto tcp reject with tcp reset", "reject"}},
	}
}

// fixedMaps are the verdict maps that make a packet's cost independent of the
// number of Services: one lookup, whatever their count.
func fixedMaps() []*knftables.Map {
	return []*knftables.Map{
		{Name: serviceIPsMap, Type: "ipv4_addr . inet_proto . inet_service : verdict"},
		{Name: serviceNodePortsMap, Type: "inet_proto . inet_service : verdict"},
		{Name: noEndpointServicesMap, Type: "ipv4_addr . inet_proto . inet_service : verdict"},
		{Name: noEndpointNodePortsMap, Type: "inet_proto . inet_service : verdict"},
	}
}

// endpointMapObjects are the maps service ports DNAT through (slots.go):
// a number to an endpoint's address and port.
func endpointMapObjects() []*knftables.Map {
	var out []*knftables.Map
	for _, proto := range slices.Sorted(maps.Keys(endpointMaps)) {
		for i := range endpointMaps[proto] {
			out = append(out, &knftables.Map{Name: endpointMapName(proto, i), TypeOf: "numgen random mod 1 : ip daddr . " + proto + " dport"})
		}
	}
	return out
}

func addElement(tx *knftables.Transaction, m, key, value string) {
	e := &knftables.Element{Key: strings.Split(key, " . ")}
	if value == "" {
		e.Set = m
	} else {
		e.Map = m
		e.Value = []string{value}
	}
	tx.Add(e)
}

func deleteElement(tx *knftables.Transaction, m, key, value string) {
	e := &knftables.Element{Key: strings.Split(key, " . ")}
	if value == "" {
		e.Set = m
	} else {
		e.Map = m
	}
	tx.Delete(e)
}

func addAffinitySet(tx *knftables.Transaction, name string, timeout int32) {
	tx.Add(&knftables.Set{
		Name:    name,
		Type:    "ipv4_addr",
		Flags:   []knftables.SetFlag{knftables.DynamicFlag},
		Timeout: ptr.To(time.Duration(timeout) * time.Second),
	})
}

func writeChain(tx *knftables.Transaction, name string, rules []string) {
	tx.Flush(&knftables.Chain{Name: name})
	for _, rule := range rules {
		tx.Add(&knftables.Rule{Chain: name, Rule: rule})
	}
}

// removeChains deletes chains, all flushed first: one may still jump to another.
func removeChains(tx *knftables.Transaction, names []string) {
	for _, c := range names {
		tx.Flush(&knftables.Chain{Name: c})
	}
	for _, c := range names {
		tx.Delete(&knftables.Chain{Name: c})
	}
}

// fullSync makes the table exactly desired (every service port, freshly
// rendered), through beginFullSync.
func (t *table) fullSync(ctx context.Context, desired map[string]*serviceRules, nodePortIPs, serviceCIDRs []string) error {
	w, err := t.beginFullSync(ctx, nodePortIPs, serviceCIDRs)
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(desired)) {
		w.write(k, desired[k])
	}
	return w.commit()
}

// fullSyncWriter rewrites the whole table in one transaction: the skeleton,
// then each service port as it is rendered, then the removal of whatever
// else the table holds. Chains are flushed and rewritten, so rules changed
// or removed behind our back are repaired and no packet ever sees a
// half-written table; session-affinity sets keep their entries. Each port
// is compacted as soon as it is written: with the transaction streamed to
// nft, the rules of 10,000 Services never sit in memory all at once.
type fullSyncWriter struct {
	t                 *table
	b                 batch
	nodePortIPs       []string
	existingChains    []string
	existingSets      []string
	wanted, wantedSet map[string]bool
	refs              map[string]int
	written           map[string]*serviceRules
	// pending are elements not written yet, by map: they go in groups
	// (addElements), after the chains they refer to.
	pending  map[string][]element
	npending int
}

// pendingLimit is how many elements wait before a group is written.
const pendingLimit = 4 * elementsPerCommand

func (w *fullSyncWriter) flushElements() {
	for _, m := range slices.Sorted(maps.Keys(w.pending)) {
		w.b.addElements(m, w.pending[m])
	}
	w.pending, w.npending = map[string][]element{}, 0
}

func (t *table) beginFullSync(ctx context.Context, nodePortIPs, serviceCIDRs []string) (*fullSyncWriter, error) {
	// What the table holds now, to remove at the end what was not written:
	// chains of Services gone while we were not looking (or before a
	// restart), sets of old affinity settings.
	existingChains, err := t.nft.List(ctx, "chains")
	if err != nil && !notFound(err) {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	// No chain of ours: a new table, with no stale set either (and netlink
	// answers a listing of a missing table's sets with a bare error).
	var existingSets []string
	if len(existingChains) > 0 {
		if existingSets, err = t.nft.List(ctx, "sets"); err != nil && !notFound(err) {
			return nil, fmt.Errorf("list sets: %w", err)
		}
	}
	b, err := t.newBatch(ctx)
	if err != nil {
		return nil, err
	}
	w := &fullSyncWriter{t: t, b: b, nodePortIPs: nodePortIPs, existingChains: existingChains, existingSets: existingSets,
		wanted: map[string]bool{}, refs: map[string]int{}, written: map[string]*serviceRules{}, pending: map[string][]element{},
		wantedSet: map[string]bool{nodePortIPsSet: true, clusterIPsSet: true, serviceCIDRsSet: true, hairpinSet: true}}
	b.add(func(tx *knftables.Transaction) {
		tx.Add(&knftables.Table{Comment: ptr.To("rules for Kubernetes Services (kubeparts-proxy)")})
		for _, b := range t.baseChains() {
			c := b.chain
			tx.Add(&c)
			w.wanted[c.Name] = true
		}
		for _, m := range append(fixedMaps(), endpointMapObjects()...) {
			tx.Add(m)
			tx.Flush(m)
		}
		np := &knftables.Set{Name: nodePortIPsSet, Type: "ipv4_addr"}
		tx.Add(np)
		tx.Flush(np)
		for _, ip := range nodePortIPs {
			addElement(tx, nodePortIPsSet, ip, "")
		}
		cips := &knftables.Set{Name: clusterIPsSet, Type: "ipv4_addr"}
		tx.Add(cips)
		tx.Flush(cips)
		hp := &knftables.Set{Name: hairpinSet, Type: "ipv4_addr . ipv4_addr . inet_proto . inet_service"}
		tx.Add(hp)
		tx.Flush(hp)
		cidrs := &knftables.Set{Name: serviceCIDRsSet, Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}}
		tx.Add(cidrs)
		tx.Flush(cidrs)
		for _, c := range serviceCIDRs {
			addElement(tx, serviceCIDRsSet, c, "")
		}
		// The skeleton's rules refer only to the skeleton's maps and sets.
		for _, b := range t.baseChains() {
			writeChain(tx, b.chain.Name, b.rules)
		}
	})
	return w, nil
}

// write adds one service port: its chains and sets first, so that its rules
// and its elements in the skeleton's maps find them, then compacts it.
func (w *fullSyncWriter) write(key string, r *serviceRules) {
	w.b.add(func(tx *knftables.Transaction) {
		for _, name := range slices.Sorted(maps.Keys(r.affinitySets)) {
			addAffinitySet(tx, name, r.affinitySets[name])
			w.wantedSet[name] = true
		}
		names := slices.Sorted(maps.Keys(r.chains))
		for _, name := range names {
			tx.Add(&knftables.Chain{Name: name})
			w.wanted[name] = true
		}
		for _, name := range names {
			writeChain(tx, name, r.chains[name])
		}
	})
	for _, m := range slices.Sorted(maps.Keys(r.elements)) {
		for _, key := range slices.Sorted(maps.Keys(r.elements[m])) {
			value := r.elements[m][key]
			if value == "" {
				// A set element several ports share (two Services on
				// one pod port): added once, counted.
				if w.refs[m+"|"+key]++; w.refs[m+"|"+key] > 1 {
					continue
				}
			}
			w.pending[m] = append(w.pending[m], element{m, key, value})
			w.npending++
		}
	}
	if w.npending >= pendingLimit {
		w.flushElements()
	}
	r.compact()
	w.written[key] = r
}

// commit removes what was not written and applies the transaction. On
// failure the table is as before and nothing is recorded as applied.
func (w *fullSyncWriter) commit() error {
	w.flushElements()
	w.b.add(func(tx *knftables.Transaction) {
		var stale []string
		for _, c := range w.existingChains {
			if !w.wanted[c] {
				stale = append(stale, c)
			}
		}
		removeChains(tx, stale)
		for _, s := range w.existingSets {
			if !w.wantedSet[s] {
				tx.Delete(&knftables.Set{Name: s})
			}
		}
	})
	if err := w.b.commit(); err != nil {
		return err
	}
	w.t.applied = w.written
	w.t.setRefs = w.refs
	w.t.nodePortIPs = w.nodePortIPs
	return nil
}

// partialSync writes only the differences between what the kernel holds for
// the given service ports and what they want now (nil: the port is gone).
// The wanted rules must be freshly rendered (not compacted).
func (t *table) partialSync(ctx context.Context, changed map[string]*serviceRules) (int, error) {
	tx := t.nft.NewTransaction()
	// Each changed port as (what the kernel holds, what it wants); an empty
	// rule set stands for "none" on either side.
	empty := newServiceRules()
	type change struct{ old, cur *serviceRules }
	var changes []change
	for _, k := range slices.Sorted(maps.Keys(changed)) {
		c := change{t.applied[k], changed[k]}
		if c.old == nil {
			c.old = empty
		}
		if c.cur == nil {
			c.cur = empty
		}
		changes = append(changes, c)
	}
	// 1. new chains and sets exist before anything refers to them.
	for _, c := range changes {
		for name, timeout := range c.cur.affinitySets {
			if old, ok := c.old.affinitySets[name]; !ok || old != timeout {
				addAffinitySet(tx, name, timeout)
			}
		}
		for name := range c.cur.chains {
			if !c.old.has(name) {
				tx.Add(&knftables.Chain{Name: name})
			}
		}
	}
	// 2. chains whose rules changed are rewritten.
	for _, c := range changes {
		for _, name := range slices.Sorted(maps.Keys(c.cur.chains)) {
			if !c.old.sameChain(name, c.cur.chains[name]) {
				writeChain(tx, name, c.cur.chains[name])
			}
		}
	}
	// 3. map elements: removed or changed ones out, then new ones in. A set
	// element goes when its last holder lets go and comes with its first.
	refs := maps.Clone(t.setRefs)
	var adds [][3]string
	for _, c := range changes {
		c.old.eachElement(func(m, key, value string) {
			if nv, ok := c.cur.lookup(m, key); ok && nv == value {
				return
			}
			if value == "" {
				if refs[m+"|"+key]--; refs[m+"|"+key] > 0 {
					return
				}
				delete(refs, m+"|"+key)
			}
			deleteElement(tx, m, key, value)
		})
		c.cur.eachElement(func(m, key, value string) {
			if ov, ok := c.old.lookup(m, key); ok && ov == value {
				return
			}
			if value == "" {
				if refs[m+"|"+key]++; refs[m+"|"+key] > 1 {
					return
				}
			}
			adds = append(adds, [3]string{m, key, value})
		})
	}
	// An element one port drops and another adds in this same sync is
	// deleted then added: both in one transaction, it never leaves.
	for _, a := range adds {
		addElement(tx, a[0], a[1], a[2])
	}
	// 4. chains and sets nothing refers to any more.
	var gone, goneSets []string
	for _, c := range changes {
		for _, name := range c.old.chainNames() {
			if _, ok := c.cur.chains[name]; !ok {
				gone = append(gone, name)
			}
		}
		for name := range c.old.affinitySets {
			if _, ok := c.cur.affinitySets[name]; !ok {
				goneSets = append(goneSets, name)
			}
		}
	}
	removeChains(tx, gone)
	for _, s := range goneSets {
		tx.Delete(&knftables.Set{Name: s})
	}
	n := tx.NumOperations()
	if n > 0 {
		if err := t.nft.Run(ctx, tx); err != nil {
			return n, err
		}
	}
	t.setRefs = refs
	// Also when nothing had to be written: what else the rules carry (ready
	// local endpoints for the health check, endpoints for conntrack) changed.
	for k, r := range changed {
		if r == nil {
			delete(t.applied, k)
		} else {
			r.compact()
			t.applied[k] = r
		}
	}
	return n, nil
}

// notFound: the table is not there. Listings through nft say so as
// knftables' not-found error, listings over netlink as a bare ENOENT.
func notFound(err error) bool {
	return knftables.IsNotFound(err) || errors.Is(err, syscall.ENOENT) || strings.Contains(err.Error(), "no such file or directory")
}

// cleanup deletes the whole table: everything kubeparts-proxy created.
func cleanup(ctx context.Context, nft knftables.Interface) error {
	tx := nft.NewTransaction()
	tx.Delete(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil && !notFound(err) {
		return err
	}
	return nil
}
