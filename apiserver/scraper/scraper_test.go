package scraper

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/kubeparts/kubeparts/apiserver/scraper/scrapertest"
)

func TestMain(m *testing.M) {
	RegisterMetrics()
	os.Exit(m.Run())
}

var nameSeq atomic.Int64

// uniqueName keeps node names (and so metric series, which are global)
// distinct across tests and -count runs.
func uniqueName(base string) string {
	return fmt.Sprintf("%s-%d", base, nameSeq.Add(1))
}

// lister is a node list the test can change between cycles.
type lister struct {
	mu    sync.Mutex
	nodes []*corev1.Node
	err   error
}

func (l *lister) set(nodes ...*corev1.Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes = nodes
}

func (l *lister) list() ([]*corev1.Node, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes, l.err
}

// scrapeWithin runs one cycle and fails the test if it does not finish by
// the deadline.
func scrapeWithin(ctx context.Context, t *testing.T, s *Scraper, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ScrapeOnce(ctx)
	}()
	select {
	case <-done:
		return time.Since(start)
	case <-time.After(d):
		t.Fatalf("scrape cycle did not finish within %v", d)
		return 0
	}
}

func failures(t *testing.T, node string) float64 {
	t.Helper()
	v, err := testutil.GetCounterMetricValue(scrapeFailures.WithLabelValues(node))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// seriesFor reports whether any of the scraper's families has a series for node.
func seriesFor(t *testing.T, node string) []string {
	t.Helper()
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "kubeparts_apiserver_scrape_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "node" && l.GetValue() == node {
					found = append(found, f.GetName())
				}
			}
		}
	}
	return found
}

func onePod(ns, name string, cpu float64, mem int64) scrapertest.PodSample {
	return scrapertest.PodSample{Namespace: ns, Name: name, Containers: []scrapertest.ContainerSample{{Name: "app", CPUSeconds: cpu, MemoryBytes: mem}}}
}

func TestScrapeCycle(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	good, garbage, hang := scrapertest.NewKubelet(t), scrapertest.NewKubelet(t), scrapertest.NewKubelet(t)
	garbage.SetBody("<html><body>not metrics</body></html>\n")
	hang.Hang()
	nodes := &lister{}
	goodName, garbageName, hangName := uniqueName("cycle-good"), uniqueName("cycle-garbage"), uniqueName("cycle-hang")
	nodes.set(good.Node(goodName), garbage.Node(garbageName), hang.Node(hangName))

	const timeout = 300 * time.Millisecond
	deadline := timeout + 2*time.Second
	s := New(nodes.list, good.Client(), Options{Interval: time.Minute, Timeout: timeout, Scheme: good.Scheme()})
	t0 := time.UnixMilli(tsMillis)

	if s.Ready() {
		t.Fatal("ready before the first cycle")
	}
	observed, err := testutil.GetHistogramMetricCount(scrapeDuration.ObserverMetric)
	if err != nil {
		t.Fatal(err)
	}
	good.SetBody(scrapertest.Body(100, 2<<30, t0, onePod("default", "web", 10, 100<<20), onePod("default", "db", 20, 200<<20)))
	scrapeWithin(ctx, t, s, deadline)
	if !s.Ready() {
		t.Fatal("not ready after a complete cycle with failed nodes")
	}
	if got := s.Nodes(); len(got) != 0 {
		t.Fatalf("nodes after one sample = %v, want none", got)
	}

	good.SetBody(scrapertest.Body(100.12, 2<<30, t0.Add(10*time.Second), onePod("default", "web", 10.05, 101<<20), onePod("default", "db", 20.2, 200<<20)))
	scrapeWithin(ctx, t, s, deadline)

	got := s.Nodes()
	if len(got) != 1 || got[0].Name != goodName || got[0].CPU.String() != "12m" || got[0].Memory.String() != "2Gi" ||
		got[0].Window != 10*time.Second || !got[0].Timestamp.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("nodes = %+v, want only cycle-good with 12m, 2Gi over 10s", got)
	}
	if _, ok := s.Node(garbageName); ok {
		t.Error("garbage node reported")
	}
	if _, ok := s.Node(hangName); ok {
		t.Error("hanging node reported")
	}
	var pods []string
	for _, p := range s.Pods("") {
		pods = append(pods, formatPod(p))
	}
	wantPods := []string{
		fmt.Sprintf("default/db %d 10s app=20m/200Mi", t0.Add(10*time.Second).UnixMilli()),
		fmt.Sprintf("default/web %d 10s app=5m/101Mi", t0.Add(10*time.Second).UnixMilli()),
	}
	if strings.Join(pods, "\n") != strings.Join(wantPods, "\n") {
		t.Fatalf("pods\n got %q\nwant %q", pods, wantPods)
	}
	for node, want := range map[string]float64{goodName: 0, garbageName: 2, hangName: 2} {
		if got := failures(t, node); got != want {
			t.Errorf("failures{node=%s} = %v, want %v", node, got, want)
		}
	}
	if n, err := testutil.GetHistogramMetricCount(scrapeDuration.ObserverMetric); err != nil || n != observed+6 {
		t.Errorf("scrape duration observations = %d, %v; want %d", n, err, observed+6)
	}
	if v, err := testutil.GetGaugeMetricValue(lastSuccess.WithLabelValues(goodName)); err != nil || v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success gauge = %v, %v; want a recent time", v, err)
	}

	// A failed scrape hides the node at once...
	good.SetStatus(http.StatusInternalServerError)
	scrapeWithin(ctx, t, s, deadline)
	if _, ok := s.Node(goodName); ok {
		t.Error("node reported after a failed scrape")
	}
	if got := s.Pods("default"); len(got) != 0 {
		t.Errorf("pods reported after a failed scrape: %v", got)
	}
	if got := failures(t, goodName); got != 1 {
		t.Errorf("failures{node=cycle-good} = %v, want 1", got)
	}

	// ...and the next success yields a rate at once; a pod that is gone stays gone.
	good.SetStatus(http.StatusOK)
	good.SetBody(scrapertest.Body(100.32, 2<<30, t0.Add(30*time.Second), onePod("default", "web", 10.25, 101<<20)))
	scrapeWithin(ctx, t, s, deadline)
	if u, ok := s.Node(goodName); !ok || u.CPU.String() != "10m" || u.Window != 20*time.Second {
		t.Errorf("node after recovery = %+v, %v; want 10m over 20s", u, ok)
	}
	if u, ok := s.Pod("default", "web"); !ok || u.Containers[0].CPU.String() != "10m" {
		t.Errorf("pod web after recovery = %+v, %v", u, ok)
	}
	if _, ok := s.Pod("default", "db"); ok {
		t.Error("deleted pod db still reported")
	}

	// Removing nodes forgets them and their metric series.
	nodes.set(garbage.Node(garbageName))
	scrapeWithin(ctx, t, s, deadline)
	if _, ok := s.Node(goodName); ok {
		t.Error("removed node still reported")
	}
	if got := s.Pods(""); len(got) != 0 {
		t.Errorf("pods of a removed node still reported: %v", got)
	}
	for _, n := range []string{goodName, hangName} {
		if got := seriesFor(t, n); len(got) != 0 {
			t.Errorf("removed node %s still has series %v", n, got)
		}
	}
	if got := seriesFor(t, garbageName); len(got) == 0 {
		t.Error("remaining node lost its failure series")
	}
}

func TestScrapeFailures(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	t0 := time.UnixMilli(tsMillis)
	valid := scrapertest.Body(100, 1<<30, t0, onePod("default", "web", 10, 100<<20))
	tests := []struct {
		name  string
		setup func(k *scrapertest.Kubelet, s *Scraper)
	}{
		{"http 401", func(k *scrapertest.Kubelet, _ *Scraper) { k.SetStatus(http.StatusUnauthorized) }},
		{"http 500", func(k *scrapertest.Kubelet, _ *Scraper) { k.SetStatus(http.StatusInternalServerError) }},
		{"empty body", func(k *scrapertest.Kubelet, _ *Scraper) { k.SetBody("") }},
		{"truncated body", func(k *scrapertest.Kubelet, _ *Scraper) { k.SetBody(valid[:len(valid)-10]) }},
		{"json", func(k *scrapertest.Kubelet, _ *Scraper) { k.SetBody(`{"kind":"Status"}` + "\n") }},
		{"body over the limit", func(k *scrapertest.Kubelet, s *Scraper) {
			s.maxBody = int64(len(valid))
			k.SetBody(valid + "# padding\n")
		}},
		{"connection refused", func(k *scrapertest.Kubelet, _ *Scraper) { k.Close() }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := scrapertest.NewKubelet(t)
			k.SetBody(valid)
			name := uniqueName(fmt.Sprintf("failing-%d", i))
			nodes := &lister{}
			nodes.set(k.Node(name))
			s := New(nodes.list, k.Client(), Options{Timeout: time.Second, Scheme: "http"})
			tc.setup(k, s)
			scrapeWithin(ctx, t, s, 5*time.Second)
			if got := failures(t, name); got != 1 {
				t.Errorf("failures = %v, want 1", got)
			}
			if !s.Ready() {
				t.Error("not ready after a complete cycle")
			}
		})
	}

	t.Run("body at the limit is accepted", func(t *testing.T) {
		k := scrapertest.NewKubelet(t)
		k.SetBody(valid)
		nodes := &lister{}
		name := uniqueName("at-limit")
		nodes.set(k.Node(name))
		s := New(nodes.list, k.Client(), Options{Timeout: time.Second, Scheme: "http"})
		s.maxBody = int64(len(valid))
		scrapeWithin(ctx, t, s, 5*time.Second)
		if got := failures(t, name); got != 0 {
			t.Errorf("failures = %v, want 0", got)
		}
	})
}

func TestStaleData(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	k := scrapertest.NewKubelet(t)
	nodes := &lister{}
	nodes.set(k.Node("stale"))
	s := New(nodes.list, k.Client(), Options{Interval: time.Minute, Timeout: time.Second, Scheme: "http"})
	clk := testingclock.NewFakePassiveClock(time.Now())
	s.clock = clk
	t0 := time.UnixMilli(tsMillis)
	scrape := func(sec int, cpu float64) {
		t.Helper()
		k.SetBody(scrapertest.Body(cpu, 1<<30, t0.Add(time.Duration(sec)*time.Second), onePod("ns", "p", cpu/10, 1<<20)))
		scrapeWithin(ctx, t, s, 5*time.Second)
	}
	served := func() bool {
		_, node := s.Node("stale")
		_, pod := s.Pod("ns", "p")
		if node != pod || node != (len(s.Nodes()) == 1) || pod != (len(s.Pods("ns")) == 1) {
			t.Fatalf("accessors disagree: Node=%v Pod=%v Nodes=%v Pods=%v", node, pod, s.Nodes(), s.Pods("ns"))
		}
		return node
	}

	scrape(0, 10)
	scrape(10, 11)
	if !served() {
		t.Fatal("not served after two samples")
	}
	// No cycle for longer than 2×Interval+Timeout (e.g. the lister keeps failing): hidden.
	clk.SetTime(clk.Now().Add(2*time.Minute + 2*time.Second))
	if served() {
		t.Fatal("stale data served")
	}
	// The old samples are dropped, so two fresh samples are needed.
	scrape(150, 20)
	if served() {
		t.Fatal("served from a stale previous sample")
	}
	scrape(160, 21)
	if !served() {
		t.Fatal("not served after two fresh samples")
	}
	// A failure followed by a long gap also drops the samples.
	k.SetStatus(http.StatusBadGateway)
	scrapeWithin(ctx, t, s, 5*time.Second)
	clk.SetTime(clk.Now().Add(3 * time.Minute))
	k.SetStatus(http.StatusOK)
	scrape(340, 30)
	if served() {
		t.Fatal("served across a failure older than the grace period")
	}
}

func TestListerError(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nodes := &lister{err: errors.New("cache not synced")}
	s := New(nodes.list, nil, Options{})
	scrapeWithin(ctx, t, s, 5*time.Second)
	if s.Ready() {
		t.Error("ready although the cycle could not list nodes")
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	const timeout = 200 * time.Millisecond
	nodes := &lister{}
	var ns []*corev1.Node
	for i := range 3 {
		k := scrapertest.NewKubelet(t)
		k.Hang()
		ns = append(ns, k.Node(fmt.Sprintf("bounded-%d", i)))
	}
	nodes.set(ns...)
	s := New(nodes.list, nil, Options{Timeout: timeout, Concurrency: 1, Scheme: "http"})
	// One at a time, each hanging node costs a full timeout.
	if d := scrapeWithin(ctx, t, s, 3*timeout+5*time.Second); d < 3*timeout {
		t.Errorf("cycle took %v with concurrency 1 and 3 hanging nodes, want >= %v", d, 3*timeout)
	}
	s = New(nodes.list, nil, Options{Timeout: timeout, Concurrency: 3, Scheme: "http"})
	scrapeWithin(ctx, t, s, timeout+2*time.Second)
}

func TestMetricsURL(t *testing.T) {
	node := func(port int32, addrs ...corev1.NodeAddress) *corev1.Node {
		n := &corev1.Node{}
		n.Name = "n"
		n.Status.Addresses = addrs
		n.Status.DaemonEndpoints.KubeletEndpoint.Port = port
		return n
	}
	internal := corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}
	external := corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.1"}
	hostname := corev1.NodeAddress{Type: corev1.NodeHostName, Address: "node-1"}
	v6 := corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "fd00::1"}
	tests := []struct {
		name string
		opts Options
		node *corev1.Node
		want string
	}{
		{"defaults prefer InternalIP and the daemon port", Options{}, node(10250, external, hostname, internal), "https://10.0.0.1:10250/metrics/resource"},
		{"no daemon port falls back to 10250", Options{}, node(0, internal), "https://10.0.0.1:10250/metrics/resource"},
		{"port override", Options{Port: 4443}, node(10250, internal), "https://10.0.0.1:4443/metrics/resource"},
		{"hostname next", Options{}, node(10250, external, hostname), "https://node-1:10250/metrics/resource"},
		{"custom preference", Options{AddressTypes: []corev1.NodeAddressType{corev1.NodeExternalIP}}, node(10250, internal, external), "https://203.0.113.1:10250/metrics/resource"},
		{"ipv6", Options{Scheme: "http"}, node(10255, v6), "http://[fd00::1]:10255/metrics/resource"},
		{"no usable address", Options{AddressTypes: []corev1.NodeAddressType{corev1.NodeExternalDNS}}, node(10250, internal), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(nil, nil, tc.opts)
			got, err := s.metricsURL(tc.node)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("metricsURL = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("metricsURL = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestPodsAcrossNodes(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	a, b := scrapertest.NewTLSKubelet(t), scrapertest.NewTLSKubelet(t)
	nodes := &lister{}
	nodes.set(a.Node("across-a"), b.Node("across-b"))
	// Both fake kubelets share one test CA, so either client trusts both.
	s := New(nodes.list, a.Client(), Options{Timeout: time.Second})
	t0 := time.UnixMilli(tsMillis)
	for i := range 2 {
		at := time.Duration(i) * 10 * time.Second
		c := float64(i)
		a.SetBody(scrapertest.Body(100+c, 1<<30, t0.Add(at),
			onePod("b", "y", 1+c*0.1, 1<<20), onePod("a", "x", 1+c*0.2, 1<<20), onePod("c", "moved", 1+c*0.3, 1<<20)))
		b.SetBody(scrapertest.Body(100+c, 1<<30, t0.Add(at+time.Second),
			onePod("a", "z", 1+c*0.4, 1<<20), onePod("c", "moved", 1+c*0.5, 1<<20), onePod("b", "w", 1+c, 1<<20)))
		scrapeWithin(ctx, t, s, 5*time.Second)
	}
	names := func(pods []PodUsage) string {
		var out []string
		for _, p := range pods {
			out = append(out, p.Namespace+"/"+p.Name+"="+p.Containers[0].CPU.String())
		}
		return strings.Join(out, " ")
	}
	if got, want := names(s.Pods("")), "a/x=20m a/z=40m b/w=100m b/y=10m c/moved=50m"; got != want {
		t.Errorf("Pods(\"\") = %s, want %s", got, want)
	}
	if got, want := names(s.Pods("b")), "b/w=100m b/y=10m"; got != want {
		t.Errorf("Pods(b) = %s, want %s", got, want)
	}
	if got := s.Pods("nope"); len(got) != 0 {
		t.Errorf("Pods(nope) = %v", got)
	}
	if u, ok := s.Pod("c", "moved"); !ok || u.Containers[0].CPU.String() != "50m" {
		t.Errorf("Pod(c, moved) = %+v, %v; want the newer report (50m)", u, ok)
	}
	if _, ok := s.Pod("a", "y"); ok {
		t.Error("Pod(a, y) found")
	}
	if got := s.Nodes(); len(got) != 2 || got[0].Name != "across-a" || got[1].Name != "across-b" {
		t.Errorf("Nodes = %+v", got)
	}
}

// Readers run while cycles publish results; run with -race.
func TestConcurrentReads(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	k := scrapertest.NewKubelet(t)
	nodes := &lister{}
	nodes.set(k.Node("concurrent"))
	s := New(nodes.list, k.Client(), Options{Timeout: time.Second, Scheme: "http"})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.Nodes()
				s.Pods("")
				s.Pod("team-1", "x")
				s.Node("concurrent")
			}
		})
	}
	for i := range 5 {
		k.SetBody(scrapertest.Body(100+float64(i), 1<<30, time.UnixMilli(tsMillis+int64(i)*10000), benchPods(20, float64(i))...))
		scrapeWithin(ctx, t, s, 5*time.Second)
	}
	close(stop)
	wg.Wait()
	if got := len(s.Pods("")); got != 20 {
		t.Errorf("pods = %d, want 20", got)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	k := scrapertest.NewKubelet(t)
	hanging := scrapertest.NewKubelet(t)
	hanging.Hang()
	nodes := &lister{}
	nodes.set(k.Node("run-good"), hanging.Node("run-hang"))
	client := &http.Client{}
	s := New(nodes.list, client, Options{Interval: 20 * time.Millisecond, Timeout: time.Minute, Scheme: "http"})
	k.SetBody(scrapertest.Body(1, 1<<30, time.Now()))

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	// The hanging node keeps the first cycle open for a minute: cancel must
	// still end Run promptly, and Ready must stay false (no complete cycle).
	deadline := time.Now().Add(5 * time.Second)
	for k.Requests() == 0 || hanging.Requests() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not scrape")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if s.Ready() {
		t.Error("ready although the only cycle was interrupted")
	}
	client.CloseIdleConnections()
	k.Close()
	hanging.Close()
	goleak.VerifyNone(t, ignore)
}

func TestRunCycles(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k := scrapertest.NewKubelet(t)
	nodes := &lister{}
	nodes.set(k.Node("run-cycles"))
	s := New(nodes.list, k.Client(), Options{Interval: 10 * time.Millisecond, Timeout: time.Second, Scheme: "http"})
	// No timestamps in the body: each scrape is stamped with its own time.
	k.SetBody("node_cpu_usage_seconds_total 100\nnode_memory_working_set_bytes 1000\n")
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for k.Requests() < 3 || !s.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("Run made %d requests, ready=%v", k.Requests(), s.Ready())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if u, ok := s.Node("run-cycles"); !ok || u.CPU.String() != "0" || u.Window <= 0 {
		t.Errorf("node = %+v, %v; want a zero rate over a positive window", u, ok)
	}
	cancel()
	<-done
}
