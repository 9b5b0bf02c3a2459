package proxy

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/knftables"

	"github.com/kubeparts/kubeparts/proxy/config"
)

const (
	// fullSyncPeriod bounds how long a rule changed behind our back can stay
	// wrong when the cheap periodic check does not see it (kube-proxy uses
	// the same hour).
	fullSyncPeriod = time.Hour
	// triggerTimeAnnotation is set by the EndpointSlice controller to when the
	// change that produced the slice happened; programming latency counts from it.
	triggerTimeAnnotation = "endpoints.kubernetes.io/last-change-trigger-time"
	serviceIndex          = "service"
	component             = "kubeparts-proxy"
)

// Proxier keeps one node's nftables table in step with the cluster's Services.
type Proxier struct {
	cfg     *config.Config
	node    string
	sources Sources
	table   *table
	metrics *metrics
	health  *healthState
	hc      *serviceHealthServers
	clock   clock.WithTicker
	// localAddrs lists this machine's IPv4 addresses (NodePorts on CIDRs).
	localAddrs func() []string

	services, slices, nodes, serviceCIDRInf cache.SharedIndexInformer

	mu           sync.Mutex
	dirty        map[string]time.Time // Service key -> oldest trigger time (zero: unknown)
	pendingEPs   int
	pendingSvcs  int
	needFull     bool
	nodeInfo     nodeInfo
	nodeIPs      []string
	serviceCIDRs []string // IPv4 service ranges from ServiceCIDR objects
	trigger      chan struct{}
	events       chan *corev1.Event
	lastFullSync time.Time
	syncedOnce   bool
	// fullSyncFailed: the last full sync failed (owned by the sync loop).
	fullSyncFailed bool
	// For the periodic check, beside the loop: started plus finished syncs,
	// the chains the table should have, whether a check runs.
	syncs      atomic.Int64
	wantChains atomic.Int64
	checking   atomic.Bool

	// Owned by the sync loop.
	rendered  map[string]*serviceRules // port key -> what it wants
	portsOf   map[string][]string      // Service key -> its port keys
	portByKey map[string]*servicePort
	slots     *slots            // where each port's endpoints are in the endpoint maps
	claims    map[string]string // "map|key" -> port key holding it
	problems  map[string]string // Service key -> last problems reported
}

// New builds a proxier on nft (a table already scoped to cfg.TableName).
func New(cfg *config.Config, nft knftables.Interface, sources Sources, c clock.WithTicker) *Proxier {
	m := newMetrics()
	p := &Proxier{
		cfg: cfg, node: cfg.HostnameOverride, sources: sources, clock: c,
		table:   newTable(nft, cfg.MasqueradeBit),
		metrics: m,
		health:  newHealthState(c, 2*cfg.SyncPeriod, m),
		hc:      newServiceHealthServers(),
		dirty:   map[string]time.Time{}, trigger: make(chan struct{}, 1), events: make(chan *corev1.Event, 100),
		needFull: true, nodeInfo: nodeInfo{name: cfg.HostnameOverride},
		rendered: map[string]*serviceRules{}, portsOf: map[string][]string{}, portByKey: map[string]*servicePort{}, slots: newSlots(),
		claims: map[string]string{}, problems: map[string]string{},
		localAddrs: interfaceAddrs,
	}
	p.hc.healthy = func() bool { ok, _, _ := p.health.healthy(); return ok }
	return p
}

// StreamFullSyncs makes full syncs stream their transaction to the nft
// binary at path as they write it, instead of building it whole in memory
// first (see newBatch). Partial syncs, small, still go through knftables.
func (p *Proxier) StreamFullSyncs(path string) {
	p.table.nftCommand, p.table.name = path, p.cfg.TableName
}

// Serve starts the health server (/healthz, /livez) and the metrics server
// (/metrics, /proxyMode, /healthz) on the configured addresses; they stop
// with ctx. An address that cannot be bound is an error, as in kube-proxy.
func (p *Proxier) Serve(ctx context.Context) error {
	if err := serve(ctx, p.cfg.HealthzBindAddress, p.health.handler()); err != nil {
		return fmt.Errorf("healthz server: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(p.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/proxyMode", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "nftables") })
	mux.Handle("/healthz", p.health.handler())
	if p.cfg.EnableProfiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if err := serve(ctx, p.cfg.MetricsBindAddress, mux); err != nil {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}

// Cleanup removes the table and everything in it (kubeparts-proxy --cleanup).
func Cleanup(ctx context.Context, nft knftables.Interface) error { return cleanup(ctx, nft) }

// Run starts the informers, waits for them, and syncs until ctx ends. The
// rules stay in the kernel when it returns: a restarted proxy finds them and
// existing connections never notice.
func (p *Proxier) Run(ctx context.Context) error {
	applyConntrackSettings(p.cfg.Conntrack)
	ensureBridgeNetfilter()
	p.services = cache.NewSharedIndexInformer(p.sources.Services, &corev1.Service{}, 0, cache.Indexers{})
	p.slices = cache.NewSharedIndexInformer(p.sources.EndpointSlices, &discoveryv1.EndpointSlice{}, 0, cache.Indexers{serviceIndex: sliceServiceKey})
	p.nodes = cache.NewSharedIndexInformer(p.sources.Node, &corev1.Node{}, 0, cache.Indexers{})
	for _, inf := range []cache.SharedIndexInformer{p.services, p.slices, p.nodes} {
		if err := inf.SetTransform(trimObject); err != nil {
			return err
		}
	}
	if _, err := p.services.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.serviceChanged(obj) },
		UpdateFunc: func(_, obj any) { p.serviceChanged(obj) },
		DeleteFunc: func(obj any) { p.serviceChanged(obj) },
	}); err != nil {
		return err
	}
	if _, err := p.slices.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.sliceChanged(obj) },
		UpdateFunc: func(_, obj any) { p.sliceChanged(obj) },
		DeleteFunc: func(obj any) { p.sliceChanged(obj) },
	}); err != nil {
		return err
	}
	if _, err := p.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.nodeChanged(obj) },
		UpdateFunc: func(_, obj any) { p.nodeChanged(obj) },
	}); err != nil {
		return err
	}
	go p.services.RunWithContext(ctx)
	go p.slices.RunWithContext(ctx)
	go p.nodes.RunWithContext(ctx)
	// The service ranges only add the drop of unallocated cluster IPs: they
	// are not waited for (an apiserver or RBAC without them must not keep
	// Services from working), and their arrival rewrites the table.
	if p.sources.ServiceCIDRs != nil {
		p.serviceCIDRInf = cache.NewSharedIndexInformer(p.sources.ServiceCIDRs, &networkingv1.ServiceCIDR{}, 0, cache.Indexers{})
		changed := func(any) { p.serviceCIDRsChanged() }
		if _, err := p.serviceCIDRInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: changed, UpdateFunc: func(_, o any) { changed(o) }, DeleteFunc: changed,
		}); err != nil {
			return err
		}
		go p.serviceCIDRInf.RunWithContext(ctx)
	}
	go p.sendEvents(ctx)
	defer p.hc.close()
	if !cache.WaitForCacheSync(ctx.Done(), p.services.HasSynced, p.slices.HasSynced, p.nodes.HasSynced) {
		return ctx.Err()
	}
	klog.InfoS("Caches synced; programming nftables", "table", p.cfg.TableName, "node", p.node)
	if len(p.nodes.GetStore().List()) == 0 {
		// As kube-proxy: Services still work, but NodePorts on the node's
		// primary addresses and topology need the Node; they follow when it appears.
		klog.InfoS("No Node object for this node yet (check --hostname-override); NodePorts on its addresses wait for it", "node", p.node)
	}
	p.event(&corev1.ObjectReference{Kind: "Node", Name: p.node, UID: "", APIVersion: "v1"}, "default", corev1.EventTypeNormal, "Starting", "Starting kubeparts-proxy.")

	periodic := p.clock.NewTicker(p.cfg.SyncPeriod)
	defer periodic.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.trigger:
		case <-periodic.C():
			// Beside the loop, never blocking a sync: listing a large table
			// takes time, and changes must not wait for it.
			if p.checking.CompareAndSwap(false, true) {
				go func() {
					defer p.checking.Store(false)
					p.checkTable(ctx)
				}()
			}
			if p.clock.Since(p.lastFullSync) <= fullSyncPeriod {
				continue
			}
		}
		// At most one sync per min-sync-period: changes arriving meanwhile
		// are batched into the next one.
		if wait := p.cfg.MinSyncPeriod - p.clock.Since(last); wait > 0 && !last.IsZero() {
			select {
			case <-ctx.Done():
				return nil
			case <-p.clock.After(wait):
			}
		}
		last = p.clock.Now()
		if err := p.syncOnce(ctx); err != nil {
			klog.ErrorS(err, "Syncing nftables rules failed; a full sync follows", "table", p.cfg.TableName)
			p.metrics.syncFailures.Inc()
			p.mu.Lock()
			p.needFull = true
			p.mu.Unlock()
			// Retry after the min sync period (the loop waits it out).
			p.kick()
		}
	}
}

func (p *Proxier) kick() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// trimObject drops what the proxy never reads before an object enters its
// cache: managed fields, and annotations other than the two it reads. With
// thousands of Services and EndpointSlices they are most of the cache.
func trimObject(obj any) (any, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	m.SetManagedFields(nil)
	m.SetOwnerReferences(nil)
	m.SetFinalizers(nil)
	m.SetGenerateName("")
	if a := m.GetAnnotations(); len(a) > 0 {
		keep := map[string]string{}
		for _, k := range []string{triggerTimeAnnotation, topologyModeAnnotation} {
			if v, ok := a[k]; ok {
				keep[k] = v
			}
		}
		if len(keep) == 0 {
			keep = nil
		}
		m.SetAnnotations(keep)
	}
	switch o := obj.(type) {
	case *corev1.Node:
		// Only the name, labels, taints, deletion and addresses matter.
		o.Status.Images, o.Status.Conditions, o.Status.VolumesAttached, o.Status.VolumesInUse = nil, nil, nil, nil
	case *corev1.Service:
		// Selection by label happened on the server; the pod selector is
		// the EndpointSlice controller's business.
		o.Labels, o.Spec.Selector = nil, nil
	case *discoveryv1.EndpointSlice:
		// At 10,000 Services the slices are most of what the proxy keeps:
		// of each endpoint only addresses, conditions, node, zone and
		// hints are read. Node and zone names repeat across every slice, so
		// one copy of each is shared.
		if name := o.Labels[discoveryv1.LabelServiceName]; name != "" {
			o.Labels = map[string]string{discoveryv1.LabelServiceName: name}
		}
		// Decoding grew the list by doubling: keep only what is used.
		o.Endpoints = slices.Clone(o.Endpoints)
		for i := range o.Endpoints {
			e := &o.Endpoints[i]
			e.TargetRef, e.Hostname, e.DeprecatedTopology = nil, nil, nil
			e.NodeName = internPtr(e.NodeName)
			e.Zone = internPtr(e.Zone)
		}
	}
	return obj, nil
}

// interned holds one copy of each node and zone name seen in EndpointSlices.
// It only grows with the cluster's nodes and zones, never with Services.
var interned sync.Map // string -> *string

func internPtr(s *string) *string {
	if s == nil {
		return nil
	}
	if v, ok := interned.Load(*s); ok {
		return v.(*string)
	}
	v, _ := interned.LoadOrStore(*s, s)
	return v.(*string)
}

func sliceServiceKey(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
}

func (p *Proxier) markDirty(key string, trigger time.Time) {
	p.mu.Lock()
	if old, ok := p.dirty[key]; !ok || (!trigger.IsZero() && (old.IsZero() || trigger.Before(old))) {
		p.dirty[key] = trigger
	}
	p.mu.Unlock()
	p.health.queued()
	p.metrics.lastQueued.SetToCurrentTime()
	p.kick()
}

func (p *Proxier) serviceChanged(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	p.metrics.serviceChangesTotal.Inc()
	p.mu.Lock()
	p.pendingSvcs++
	p.metrics.serviceChangesPend.Set(float64(p.pendingSvcs))
	p.mu.Unlock()
	p.markDirty(svc.Namespace+"/"+svc.Name, time.Time{})
}

func (p *Proxier) sliceChanged(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
		return
	}
	p.metrics.endpointChangesTotal.Inc()
	p.mu.Lock()
	p.pendingEPs++
	p.metrics.endpointChangesPend.Set(float64(p.pendingEPs))
	p.mu.Unlock()
	var trigger time.Time
	if v := s.Annotations[triggerTimeAnnotation]; v != "" {
		trigger, _ = time.Parse(time.RFC3339Nano, v)
	}
	p.markDirty(s.Namespace+"/"+s.Labels[discoveryv1.LabelServiceName], trigger)
}

// nodeChanged follows this node's zone and addresses; a change of either
// rewrites everything (topology and NodePort addresses touch every Service).
func (p *Proxier) nodeChanged(obj any) {
	node, ok := obj.(*corev1.Node)
	if !ok || node.Name != p.node {
		return
	}
	p.health.syncNode(node)
	info := nodeInfo{name: node.Name, zone: node.Labels[corev1.LabelTopologyZone]}
	var ips []string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
				ips = append(ips, ip.String())
			}
		}
	}
	p.mu.Lock()
	changed := info != p.nodeInfo || !slices.Equal(ips, p.nodeIPs)
	p.nodeInfo, p.nodeIPs = info, ips
	if changed {
		p.needFull = true
	}
	p.mu.Unlock()
	if changed {
		p.kick()
	}
}

// serviceCIDRsChanged follows the cluster's ServiceCIDR objects; a change of
// the ranges rewrites the table.
func (p *Proxier) serviceCIDRsChanged() {
	var cidrs []string
	for _, o := range p.serviceCIDRInf.GetStore().List() {
		sc := o.(*networkingv1.ServiceCIDR)
		for _, c := range sc.Spec.CIDRs {
			if pfx, err := netip.ParsePrefix(c); err == nil && pfx.Addr().Is4() {
				cidrs = append(cidrs, pfx.Masked().String())
			}
		}
	}
	slices.Sort(cidrs)
	cidrs = slices.Compact(cidrs)
	p.mu.Lock()
	changed := !slices.Equal(cidrs, p.serviceCIDRs)
	p.serviceCIDRs = cidrs
	if changed {
		p.needFull = true
	}
	p.mu.Unlock()
	if changed {
		p.kick()
	}
}

// nodePortAddresses are the addresses NodePorts answer on.
func (p *Proxier) nodePortAddresses(nodeIPs []string) []string {
	if len(p.cfg.NodePortAddresses) == 1 && p.cfg.NodePortAddresses[0] == config.NodePortAddressesPrimary {
		return nodeIPs
	}
	var out []string
	for _, a := range p.localAddrs() {
		ip := net.ParseIP(a)
		for _, c := range p.cfg.NodePortAddresses {
			if _, n, err := net.ParseCIDR(c); err == nil && n.Contains(ip) {
				out = append(out, a)
				break
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func interfaceAddrs() []string {
	addrs, _ := net.InterfaceAddrs()
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			out = append(out, n.IP.String())
		}
	}
	return out
}

func (p *Proxier) renderContext() renderContext {
	var cidrs []string
	for _, c := range p.cfg.ClusterCIDRs {
		if c.IP.To4() != nil {
			cidrs = append(cidrs, c.String())
		}
	}
	return renderContext{clusterCIDRs: cidrSet(cidrs), masqueradeAll: p.cfg.MasqueradeAll, roundRobin: p.cfg.LoadBalancing == config.LoadBalancingRoundRobin}
}

// renderService computes the rules of every port of one Service from the
// caches, with the problems to report.
// problem is something of a Service that was not programmed, with the
// reason its Warning Event carries.
type problem struct{ reason, message string }

const (
	reasonNotSupported  = "ServiceNotSupported"  // e.g. no IPv4 cluster IP
	reasonInvalidSlice  = "InvalidEndpointSlice" // addresses, ports
	reasonDestinationIn = "DestinationInUse"     // an external IP and port another Service holds
)

func problemsOf(reason string, messages []string) []problem {
	out := make([]problem, 0, len(messages))
	for _, m := range messages {
		out = append(out, problem{reason, m})
	}
	return out
}

func (p *Proxier) renderService(key string, node nodeInfo, rc renderContext) (map[string]*serviceRules, map[string]*servicePort, []problem, *corev1.Service) {
	obj, exists, _ := p.services.GetIndexer().GetByKey(key)
	if !exists {
		return nil, nil, nil, nil
	}
	svc := obj.(*corev1.Service)
	ports, unsupported := servicePorts(svc)
	var problems []problem
	if unsupported != "" {
		problems = append(problems, problem{reasonNotSupported, unsupported})
	}
	objs, _ := p.slices.GetIndexer().ByIndex(serviceIndex, key)
	var sl []*discoveryv1.EndpointSlice
	for _, o := range objs {
		sl = append(sl, o.(*discoveryv1.EndpointSlice))
	}
	eps, slProblems := sliceEndpoints(sl, ports)
	problems = append(problems, problemsOf(reasonInvalidSlice, slProblems)...)
	rules := map[string]*serviceRules{}
	byKey := map[string]*servicePort{}
	for _, sp := range ports {
		k := sp.name.key()
		sp.slot = p.slots.assign(k, strings.ToLower(string(sp.name.Protocol)))
		rules[k] = renderServicePort(sp, chooseEndpoints(sp, eps[sp.name], node), rc)
		byKey[k] = sp
	}
	return rules, byKey, problems, svc
}

// claim makes sure no two service ports write the same map element (two
// Services sharing an external IP and port): the first keeps it, the other
// loses that destination and says so.
func (p *Proxier) claim(portKey string, r *serviceRules, problems *[]problem) {
	for m, elems := range r.elements {
		for key, value := range elems {
			if value == "" || isEndpointMap(m) {
				continue // set elements may be shared (the table counts them); endpoint keys are the port's own
			}
			id := m + "|" + key
			if owner, ok := p.claims[id]; ok && owner != portKey {
				delete(elems, key)
				*problems = append(*problems, problem{reasonDestinationIn,
					fmt.Sprintf("destination %s is already used by Service port %s; it is not programmed for this one", key, owner)})
				continue
			}
			p.claims[id] = portKey
		}
	}
}

func (p *Proxier) release(portKey string) {
	if old := p.rendered[portKey]; old != nil {
		old.eachElement(func(m, key, _ string) {
			if isEndpointMap(m) {
				return
			}
			if p.claims[m+"|"+key] == portKey {
				delete(p.claims, m+"|"+key)
			}
		})
	}
}

// syncOnce brings the table up to date: a full sync when asked (start, node
// change, failure, hourly), else a partial one of the Services that changed.
func (p *Proxier) syncOnce(ctx context.Context) error {
	p.syncs.Add(1)
	defer p.syncs.Add(1)
	began := p.clock.Now()
	p.mu.Lock()
	dirty := p.dirty
	p.dirty = map[string]time.Time{}
	full := p.needFull || p.clock.Since(p.lastFullSync) > fullSyncPeriod
	p.needFull = false
	node, nodeIPs, serviceCIDRs := p.nodeInfo, p.nodeIPs, p.serviceCIDRs
	p.pendingEPs, p.pendingSvcs = 0, 0
	p.mu.Unlock()
	p.metrics.endpointChangesPend.Set(0)
	p.metrics.serviceChangesPend.Set(0)
	if full && len(p.services.GetIndexer().ListKeys()) >= eagerGCServices {
		defer eagerGC()()
	}
	requeue := func() {
		p.mu.Lock()
		for k, t := range dirty {
			if _, ok := p.dirty[k]; !ok {
				p.dirty[k] = t
			}
		}
		p.mu.Unlock()
	}

	if full {
		for _, k := range p.services.GetIndexer().ListKeys() {
			if _, ok := dirty[k]; !ok {
				dirty[k] = time.Time{}
			}
		}
		for k := range p.portsOf {
			if _, ok := dirty[k]; !ok {
				dirty[k] = time.Time{}
			}
		}
	}
	// A full sync renders every Service anew (all are dirty) and writes
	// each port into the transaction as soon as it is rendered: the table
	// becomes exactly what is rendered now.
	var fw *fullSyncWriter
	if full {
		var err error
		if fw, err = p.table.beginFullSync(ctx, p.nodePortAddresses(nodeIPs), serviceCIDRs); err != nil {
			requeue()
			return err
		}
	}
	rc := p.renderContext()
	changed := map[string]*serviceRules{}
	newPorts := map[string]*servicePort{}
	newPortsOf := map[string][]string{}
	for _, svcKey := range slices.Sorted(maps.Keys(dirty)) {
		rules, byKey, problems, svc := p.renderService(svcKey, node, rc)
		for _, k := range p.portsOf[svcKey] {
			if _, ok := rules[k]; !ok {
				changed[k] = nil
			}
			p.release(k)
		}
		for _, k := range slices.Sorted(maps.Keys(rules)) {
			p.claim(k, rules[k], &problems)
			changed[k] = rules[k]
			newPorts[k] = byKey[k]
			if fw != nil {
				fw.write(k, rules[k])
			}
		}
		newPortsOf[svcKey] = slices.Sorted(maps.Keys(rules))
		p.report(svcKey, svc, problems)
	}

	var err error
	if full {
		err = fw.commit()
		if err != nil && p.fullSyncFailed {
			// A second full sync in a row failing means the table holds
			// something it cannot be reconciled with (an object of another
			// shape, from another version or another hand): delete it, and
			// the next sync (a full one) writes it anew. Established
			// connections keep their conntrack entries; only session
			// affinity memories are lost.
			klog.ErrorS(err, "Full sync failed again; deleting the table to write it anew", "table", p.cfg.TableName)
			if cerr := cleanup(ctx, p.table.nft); cerr != nil {
				klog.ErrorS(cerr, "Deleting the table failed", "table", p.cfg.TableName)
			}
			p.table.applied, p.table.setRefs = map[string]*serviceRules{}, map[string]int{}
		}
		p.fullSyncFailed = err != nil
	} else {
		_, err = p.table.partialSync(ctx, changed)
	}
	if err != nil {
		requeue()
		return err
	}
	// What the kernel holds now.
	oldRendered := p.rendered
	p.rendered = maps.Clone(p.table.applied)
	for svcKey, keys := range newPortsOf {
		if len(keys) == 0 {
			delete(p.portsOf, svcKey)
		} else {
			p.portsOf[svcKey] = keys
		}
	}
	for k, r := range changed {
		sp := p.portByKey[k]
		if r != nil {
			sp = newPorts[k]
		}
		if sp != nil {
			if flows := staleUDPFlows(oldRendered[k], r, sp); len(flows) > 0 {
				n, err := deleteFlows(flows)
				if err != nil {
					klog.ErrorS(err, "Deleting stale UDP conntrack entries failed", "servicePort", sp.name.String())
				}
				p.metrics.conntrackDeleted.Add(float64(n))
				klog.V(2).InfoS("Deleted stale UDP conntrack entries", "servicePort", sp.name.String(), "entries", n)
			}
		}
		if r == nil {
			delete(p.portByKey, k)
			p.slots.release(k)
		} else {
			p.portByKey[k] = newPorts[k]
		}
	}
	p.syncHealthChecks()
	chains := len(p.table.baseChains())
	for _, r := range p.table.applied {
		chains += len(r.chainNames())
	}
	p.wantChains.Store(int64(chains))

	now := p.clock.Now()
	elapsed := now.Sub(began).Seconds()
	p.metrics.syncDuration.Observe(elapsed)
	if full {
		p.metrics.fullSyncDuration.Observe(elapsed)
		p.lastFullSync = now
		// A full sync builds the whole table as text for nft: tens of MB at
		// 10,000 Services, garbage once written. Give it back to the node
		// now rather than when the runtime's scavenger gets to it (full
		// syncs are rare: start, hourly, after failures).
		debug.FreeOSMemory()
	} else {
		p.metrics.partialSyncDuration.Observe(elapsed)
	}
	for _, t := range dirty {
		if !t.IsZero() {
			p.metrics.programmingDuration.Observe(now.Sub(t).Seconds())
		}
	}
	p.metrics.lastSync.SetToCurrentTime()
	p.health.updated()
	p.mu.Lock()
	p.syncedOnce = true
	p.mu.Unlock()
	klog.V(2).InfoS("Synced nftables rules", "full", full, "services", len(dirty), "servicePorts", len(p.rendered), "elapsed", time.Duration(elapsed*float64(time.Second)))
	return nil
}

// steadyGCPercent is the garbage collector's target between full syncs,
// unless GOGC is set. A proxy runs on every node and mostly waits: memory
// matters more there than the CPU of a few more collections, and Go's
// default of 100 lets the heap grow to twice what is live.
const steadyGCPercent = 50

// TuneGC sets the process's GC target to steadyGCPercent unless the GOGC
// environment variable says otherwise.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(steadyGCPercent)
	}
}

// fullSyncGCPercent is the garbage collector's target while a full sync
// runs. A full sync renders every Service: at 10,000 Services it makes
// hundreds of MB of short-lived rules and text on top of the caches, the
// proxy's peak memory, and at steadyGCPercent the heap would grow half again
// past what is live before a collection. Full syncs are rare, so the extra
// collections cost little.
const fullSyncGCPercent = 25

// eagerGCServices is from how many Services a full sync collects eagerly:
// below it the whole heap is a few tens of MB, and the extra collections
// would only slow the sync down.
const eagerGCServices = 2000

// eagerGC lowers the GC target to fullSyncGCPercent (unless GOGC asks for
// less, or for none) and returns what restores it.
func eagerGC() func() {
	prev := debug.SetGCPercent(fullSyncGCPercent)
	if prev < fullSyncGCPercent { // GOGC lower, or off
		debug.SetGCPercent(prev)
	}
	return func() { debug.SetGCPercent(prev) }
}

// syncHealthChecks opens, updates and closes the health check node ports.
func (p *Proxier) syncHealthChecks() {
	want := map[int32]healthCheck{}
	var noLocalInternal, noLocalExternal int
	for k, r := range p.rendered {
		sp := p.portByKey[k]
		if sp == nil {
			continue
		}
		if sp.internalLocal && r.hasEndpoints && r.localReady == 0 {
			noLocalInternal++
		}
		if sp.externalLocal && r.hasEndpoints && r.localReady == 0 {
			noLocalExternal++
		}
		if r.healthCheck != 0 {
			hc := want[r.healthCheck]
			hc.namespace, hc.name = sp.name.Namespace, sp.name.Name
			// Ports of one Service share its health check; count endpoints once.
			if r.localReady > hc.localEndpoints {
				hc.localEndpoints = r.localReady
			}
			want[r.healthCheck] = hc
		}
	}
	p.metrics.noLocalEndpoints.WithLabelValues("internal").Set(float64(noLocalInternal))
	p.metrics.noLocalEndpoints.WithLabelValues("external").Set(float64(noLocalExternal))
	for _, err := range p.hc.sync(want) {
		klog.ErrorS(err, "Health check node port not served")
	}
}

// checkTable is the cheap periodic check: if the table or one of our chains
// is gone (listed over netlink, no nft run), or while the table is small a
// rule of the skeleton changed, behind our back, a full sync rewrites them
// now rather than within the hour.
func (p *Proxier) checkTable(ctx context.Context) {
	// A sync running or starting while the table is listed makes the
	// listing meaningless: syncs counts started and finished syncs (odd
	// while one runs).
	before := p.syncs.Load()
	if before == 0 || before%2 == 1 {
		return
	}
	want := p.wantChains.Load()
	broken := ""
	chains, err := p.table.nft.List(ctx, "chains")
	switch {
	case err != nil:
		broken = "table: " + err.Error()
	case int64(len(chains)) != want:
		broken = fmt.Sprintf("%d chains, expected %d", len(chains), want)
	}
	// The rules of the skeleton's chains too, while the table is small: nft
	// reads the whole table for any listing of rules, seconds at 100,000
	// endpoints; there a changed rule waits for the hourly full sync.
	if broken == "" && len(chains) < 2000 {
		for _, b := range p.table.baseChains() {
			rules, err := p.table.nft.ListRules(ctx, b.chain.Name)
			if err != nil || len(rules) != len(b.rules) {
				broken = "chain " + b.chain.Name + " was changed"
				break
			}
		}
	}
	if broken == "" || p.syncs.Load() != before || ctx.Err() != nil {
		return
	}
	klog.InfoS("nftables table changed behind kubeparts-proxy's back; rewriting it", "table", p.cfg.TableName, "reason", broken)
	p.mu.Lock()
	p.needFull = true
	p.mu.Unlock()
	p.kick()
}

// report sends a Warning Event on the Service when what was skipped of it
// changes, and logs it; the same problems are not repeated at every sync.
func (p *Proxier) report(key string, svc *corev1.Service, problems []problem) {
	var parts []string
	for _, pr := range problems {
		parts = append(parts, pr.reason+": "+pr.message)
	}
	text := strings.Join(parts, "; ")
	if svc == nil || text == "" {
		delete(p.problems, key)
		p.metrics.invalidServicesSkipped.Set(float64(len(p.problems)))
		return
	}
	if p.problems[key] == text {
		return
	}
	p.problems[key] = text
	p.metrics.invalidServicesSkipped.Set(float64(len(p.problems)))
	klog.InfoS("Service not fully programmed", "service", key, "problems", text)
	// One Event per reason, as an operator reads them in kubectl describe.
	byReason := map[string][]string{}
	var reasons []string
	for _, pr := range problems {
		if byReason[pr.reason] == nil {
			reasons = append(reasons, pr.reason)
		}
		byReason[pr.reason] = append(byReason[pr.reason], pr.message)
	}
	ref := &corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: svc.Namespace, Name: svc.Name, UID: svc.UID, ResourceVersion: svc.ResourceVersion}
	for _, r := range reasons {
		p.event(ref, svc.Namespace, corev1.EventTypeWarning, r, strings.Join(byReason[r], "; "))
	}
}

func (p *Proxier) event(ref *corev1.ObjectReference, namespace, typ, reason, msg string) {
	now := metav1.NewTime(p.clock.Now())
	e := &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", ref.Name, now.UnixNano()), Namespace: namespace},
		InvolvedObject:      *ref,
		Reason:              reason,
		Message:             msg,
		Type:                typ,
		Source:              corev1.EventSource{Component: component, Host: p.node},
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		ReportingController: component,
		ReportingInstance:   component + "-" + p.node,
	}
	select {
	case p.events <- e:
	default:
		klog.InfoS("Event dropped: too many pending", "reason", reason, "object", ref.Name)
	}
}

func (p *Proxier) sendEvents(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-p.events:
			if p.sources.CreateEvent == nil {
				continue
			}
			_ = wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Steps: 4}, func(ctx context.Context) (bool, error) {
				err := p.sources.CreateEvent(ctx, e)
				if err != nil {
					klog.V(2).InfoS("Writing Event failed", "reason", e.Reason, "err", err)
				}
				return err == nil, nil
			})
		}
	}
}
