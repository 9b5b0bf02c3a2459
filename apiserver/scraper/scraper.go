package scraper

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Options configures a Scraper. Zero values select the defaults.
type Options struct {
	Interval    time.Duration // default 15s
	Timeout     time.Duration // per node, default 10s
	Concurrency int           // parallel node scrapes, default 10
	// AddressTypes is the preference order of node addresses; default InternalIP, Hostname, InternalDNS, ExternalIP, ExternalDNS
	AddressTypes []corev1.NodeAddressType
	// Port overrides the kubelet port; 0 = node.Status.DaemonEndpoints.KubeletEndpoint.Port (default 10250 if that is 0)
	Port int
	// Scheme "https" (default) or "http" (tests)
	Scheme string
}

// NodeUsage is a node's usage over Window ending at Timestamp.
type NodeUsage struct {
	Name      string
	Timestamp time.Time
	Window    time.Duration
	CPU       resource.Quantity
	Memory    resource.Quantity
}

// ContainerUsage is one container's usage.
type ContainerUsage struct {
	Name        string
	CPU, Memory resource.Quantity
}

// PodUsage is a pod's usage; Containers are sorted by name.
type PodUsage struct {
	Namespace, Name string
	Timestamp       time.Time
	Window          time.Duration
	Containers      []ContainerUsage
}

const (
	defaultInterval    = 15 * time.Second
	defaultTimeout     = 10 * time.Second
	defaultConcurrency = 10
	defaultKubeletPort = 10250
	// maxBodyBytes bounds what is read from one kubelet; a real body for 110
	// pods is about 150 KiB.
	maxBodyBytes = 10 << 20
	// Buffers that grew beyond this are not pooled, so one odd node does not
	// pin a large buffer for the life of the process.
	maxPooledBuffer = 1 << 20
	metricsPath     = "/metrics/resource"
)

var defaultAddressTypes = []corev1.NodeAddressType{
	corev1.NodeInternalIP, corev1.NodeHostName, corev1.NodeInternalDNS, corev1.NodeExternalIP, corev1.NodeExternalDNS,
}

// Scraper periodically scrapes every node's kubelet and keeps the latest
// node and pod usage. See the package documentation for the semantics.
type Scraper struct {
	listNodes func() ([]*corev1.Node, error)
	client    *http.Client
	opts      Options
	// staleAfter is how long a node's data lives without a successful scrape.
	staleAfter time.Duration
	maxBody    int64
	clock      clock.PassiveClock

	buffers sync.Pool // *bytes.Buffer
	parsers sync.Pool // *parser

	cycle sync.Mutex // serialises cycles
	ready atomic.Bool

	mu    sync.RWMutex
	nodes map[string]nodeEntry
}

// nodeEntry is replaced as a whole under Scraper.mu; state is immutable.
type nodeEntry struct {
	state   *nodeState // last good state; nil if none or dropped as stale
	scraped time.Time  // when state was scraped
	ok      bool       // the latest scrape of this node succeeded
}

// New returns a Scraper. nodes lists the nodes to scrape each cycle (e.g. an
// informer lister); client performs the requests, with TLS and
// authentication set up by the caller (nil means http.DefaultClient).
func New(nodes func() ([]*corev1.Node, error), client *http.Client, opts Options) *Scraper {
	if opts.Interval <= 0 {
		opts.Interval = defaultInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = defaultConcurrency
	}
	if len(opts.AddressTypes) == 0 {
		opts.AddressTypes = defaultAddressTypes
	}
	opts.AddressTypes = slices.Clone(opts.AddressTypes)
	if opts.Scheme == "" {
		opts.Scheme = "https"
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &Scraper{
		listNodes:  nodes,
		client:     client,
		opts:       opts,
		staleAfter: 2*opts.Interval + opts.Timeout,
		maxBody:    maxBodyBytes,
		clock:      clock.RealClock{},
		buffers:    sync.Pool{New: func() any { return new(bytes.Buffer) }},
		parsers:    sync.Pool{New: func() any { return new(parser) }},
		nodes:      map[string]nodeEntry{},
	}
}

// Run scrapes at once and then every Interval until ctx ends. A cycle that
// overruns the interval delays the next one instead of overlapping it.
func (s *Scraper) Run(ctx context.Context) {
	ticker := time.NewTicker(s.opts.Interval)
	defer ticker.Stop()
	for ctx.Err() == nil {
		s.ScrapeOnce(ctx)
		select {
		case <-ctx.Done():
		case <-ticker.C:
		}
	}
}

// Ready reports whether a full cycle has completed (even if some nodes failed).
func (s *Scraper) Ready() bool { return s.ready.Load() }

// ScrapeOnce runs one full cycle: list the nodes, forget the ones that are
// gone, scrape the rest with bounded concurrency and publish each node's
// result as soon as it is known.
func (s *Scraper) ScrapeOnce(ctx context.Context) {
	s.cycle.Lock()
	defer s.cycle.Unlock()
	logger := klog.FromContext(ctx)
	start := time.Now()

	nodes, err := s.listNodes()
	if err != nil {
		logger.Error(err, "Failed to list nodes, skipping scrape cycle")
		return
	}
	nodes = s.forgetRemoved(nodes)

	work := make(chan *corev1.Node)
	var wg sync.WaitGroup
	for range min(s.opts.Concurrency, len(nodes)) {
		wg.Go(func() {
			for n := range work {
				s.scrapeNode(ctx, n)
			}
		})
	}
feed:
	for _, n := range nodes {
		select {
		case work <- n:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return // interrupted: not a complete cycle
	}
	s.ready.Store(true)
	logger.V(4).Info("Scrape cycle finished", "nodes", len(nodes), "duration", time.Since(start))
}

// forgetRemoved drops the nodes that are no longer listed and returns the
// listed nodes without nils and duplicates (a node must be scraped once per
// cycle, or two scrapes would race to fold into the same previous state).
func (s *Scraper) forgetRemoved(nodes []*corev1.Node) []*corev1.Node {
	current := make(map[string]struct{}, len(nodes))
	unique := make([]*corev1.Node, 0, len(nodes))
	for _, n := range nodes {
		if n == nil {
			continue
		}
		if _, dup := current[n.Name]; !dup {
			current[n.Name] = struct{}{}
			unique = append(unique, n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.nodes {
		if _, ok := current[name]; !ok {
			delete(s.nodes, name)
			forgetNodeMetrics(name)
		}
	}
	return unique
}

func (s *Scraper) scrapeNode(ctx context.Context, node *corev1.Node) {
	name := node.Name
	prev := s.previous(name)

	start := time.Now()
	nodeCtx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	st, err := s.fetch(nodeCtx, node, prev)
	cancel()
	scrapeDuration.Observe(time.Since(start).Seconds())
	now := s.clock.Now()

	if err != nil {
		if ctx.Err() != nil {
			return // shutting down; not the node's fault
		}
		scrapeFailures.WithLabelValues(name).Inc()
		klog.FromContext(ctx).Error(err, "Failed to scrape kubelet resource metrics", "node", klog.KObj(node))
		s.mu.Lock()
		e := s.nodes[name]
		e.ok = false
		if e.state != nil && now.Sub(e.scraped) > s.staleAfter {
			e.state = nil
		}
		s.nodes[name] = e
		s.mu.Unlock()
		return
	}
	lastSuccess.WithLabelValues(name).Set(float64(now.UnixNano()) / 1e9)
	s.mu.Lock()
	s.nodes[name] = nodeEntry{state: st, scraped: now, ok: true}
	s.mu.Unlock()
}

// previous returns the state the next sample is folded into: the node's last
// good state unless it is stale.
func (s *Scraper) previous(name string) *nodeState {
	s.mu.RLock()
	e := s.nodes[name]
	s.mu.RUnlock()
	if e.state == nil || s.clock.Since(e.scraped) > s.staleAfter {
		return nil
	}
	return e.state
}

// fetch scrapes one kubelet and returns the node's next state.
func (s *Scraper) fetch(ctx context.Context, node *corev1.Node, prev *nodeState) (*nodeState, error) {
	url, err := s.metricsURL(node)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// The classic text format: exactly what the parser reads.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		// A little of the body says why (e.g. "Unauthorized"); reading it
		// also lets the connection be reused.
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return nil, fmt.Errorf("GET %s: unexpected status %s: %q", url, resp.Status, bytes.TrimSpace(snippet))
	}
	if resp.ContentLength > s.maxBody {
		return nil, fmt.Errorf("GET %s: body of %d bytes exceeds the %d byte limit", url, resp.ContentLength, s.maxBody)
	}

	buf := s.buffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			s.buffers.Put(buf)
		}
	}()
	// Read one byte past the limit to tell "exactly at the limit" from "over it".
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, s.maxBody+1)); err != nil {
		return nil, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if int64(buf.Len()) > s.maxBody {
		return nil, fmt.Errorf("GET %s: body exceeds the %d byte limit", url, s.maxBody)
	}

	p := s.parsers.Get().(*parser)
	defer func() {
		p.reset()
		s.parsers.Put(p)
	}()
	if err := p.parse(buf.Bytes(), s.clock.Now().UnixNano()); err != nil {
		return nil, fmt.Errorf("GET %s: parsing body: %w", url, err)
	}
	st, err := nextState(prev, p)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return st, nil
}

func (s *Scraper) metricsURL(node *corev1.Node) (string, error) {
	host := ""
	for _, t := range s.opts.AddressTypes {
		for _, a := range node.Status.Addresses {
			if a.Type == t && a.Address != "" {
				host = a.Address
				break
			}
		}
		if host != "" {
			break
		}
	}
	if host == "" {
		return "", fmt.Errorf("node has no address of types %v", s.opts.AddressTypes)
	}
	port := s.opts.Port
	if port == 0 {
		port = int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	}
	if port == 0 {
		port = defaultKubeletPort
	}
	return s.opts.Scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + metricsPath, nil
}

// live returns the node's state if it may be served now.
func (s *Scraper) live(e nodeEntry, now time.Time) *nodeState {
	if !e.ok || e.state == nil || now.Sub(e.scraped) > s.staleAfter {
		return nil
	}
	return e.state
}

// snapshot returns the servable node states, keyed by node name.
func (s *Scraper) snapshot() map[string]*nodeState {
	now := s.clock.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]*nodeState, len(s.nodes))
	for name, e := range s.nodes {
		if st := s.live(e, now); st != nil {
			out[name] = st
		}
	}
	return out
}

// Node returns a node's latest usage.
func (s *Scraper) Node(name string) (NodeUsage, bool) {
	s.mu.RLock()
	e, ok := s.nodes[name]
	s.mu.RUnlock()
	if !ok {
		return NodeUsage{}, false
	}
	st := s.live(e, s.clock.Now())
	if st == nil {
		return NodeUsage{}, false
	}
	return st.usage(name)
}

// Nodes returns the usage of every node that has one, sorted by name.
func (s *Scraper) Nodes() []NodeUsage {
	snap := s.snapshot()
	out := make([]NodeUsage, 0, len(snap))
	for name, st := range snap {
		if u, ok := st.usage(name); ok {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b NodeUsage) int { return compareNames("", a.Name, "", b.Name) })
	return out
}

// Pod returns a pod's latest usage.
func (s *Scraper) Pod(namespace, name string) (PodUsage, bool) {
	var best *podState
	for _, st := range s.snapshot() {
		i, found := slices.BinarySearchFunc(st.pods, [2]string{namespace, name}, func(p podState, key [2]string) int {
			return compareNames(p.namespace, p.name, key[0], key[1])
		})
		if found && newerPod(&st.pods[i], best) {
			best = &st.pods[i]
		}
	}
	if best == nil {
		return PodUsage{}, false
	}
	return best.usage()
}

// Pods returns the usage of every pod in namespace ("" = all namespaces)
// that has one, sorted by namespace and name.
func (s *Scraper) Pods(namespace string) []PodUsage {
	var found []*podState
	for _, st := range s.snapshot() {
		pods := st.pods
		if namespace != "" {
			lo, _ := slices.BinarySearchFunc(pods, namespace, func(p podState, ns string) int {
				return compareNames(p.namespace, "", ns, "")
			})
			hi := lo
			for hi < len(pods) && pods[hi].namespace == namespace {
				hi++
			}
			pods = pods[lo:hi]
		}
		for i := range pods {
			found = append(found, &pods[i])
		}
	}
	slices.SortFunc(found, func(a, b *podState) int { return compareNames(a.namespace, a.name, b.namespace, b.name) })
	// A pod reported by two kubelets (moved, or a stale node) counts once:
	// keep the newest report.
	out := make([]PodUsage, 0, len(found))
	for i := 0; i < len(found); {
		best := found[i]
		j := i + 1
		for ; j < len(found) && compareNames(found[j].namespace, found[j].name, best.namespace, best.name) == 0; j++ {
			if newerPod(found[j], best) {
				best = found[j]
			}
		}
		if u, ok := best.usage(); ok {
			out = append(out, u)
		}
		i = j
	}
	return out
}

// newerPod reports whether p has a later sample than q (nil q: always).
func newerPod(p, q *podState) bool {
	if q == nil {
		return true
	}
	return latestTS(p) > latestTS(q)
}

func latestTS(p *podState) int64 {
	var ts int64
	for i := range p.containers {
		ts = max(ts, p.containers[i].cpu.ts)
	}
	return ts
}
