package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/knftables"

	"github.com/kubeparts/kubeparts/proxy/config"
)

// fakeCluster runs a Proxier against client-go's fake clientset and
// knftables' fake: the loop (informers, batching, partial and full syncs,
// Events, health) without a kernel or an API server.
type fakeCluster struct {
	cs     *fake.Clientset
	nft    *knftables.Fake
	p      *Proxier
	mu     sync.Mutex
	events []*corev1.Event
}

func startFake(t *testing.T, objs ...runtime.Object) *fakeCluster {
	t.Helper()
	return startFakeWith(t, knftables.NewFake(knftables.IPv4Family, "kubeparts-proxy"), objs...)
}

func startFakeWith(t *testing.T, nft knftables.Interface, objs ...runtime.Object) *fakeCluster {
	t.Helper()
	f := &fakeCluster{cs: fake.NewClientset(objs...), nft: fakeOf(nft)}
	lw := func(list func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error), w func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error)) cache.ListerWatcher {
		// The fake clientset cannot stream lists (watch-list): say so, as
		// client-go's generated informers do for it.
		return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{ListWithContextFunc: list, WatchFuncWithContext: w}, f.cs)
	}
	core, disc := f.cs.CoreV1(), f.cs.DiscoveryV1()
	sources := Sources{
		Services: lw(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return core.Services("").List(ctx, o)
		},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return core.Services("").Watch(ctx, o)
			}),
		EndpointSlices: lw(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return disc.EndpointSlices("").List(ctx, o)
		},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return disc.EndpointSlices("").Watch(ctx, o)
			}),
		Node: lw(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return core.Nodes().List(ctx, o)
		},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return core.Nodes().Watch(ctx, o)
			}),
		CreateEvent: func(_ context.Context, e *corev1.Event) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.events = append(f.events, e)
			return nil
		},
	}
	cfg := &config.Config{HostnameOverride: "node-a", MinSyncPeriod: 10 * time.Millisecond, SyncPeriod: time.Hour,
		MasqueradeBit: 14, LoadBalancing: config.LoadBalancingRandom, NodePortAddresses: []string{config.NodePortAddressesPrimary}}
	f.p = New(cfg, nft, sources, clock.RealClock{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := f.p.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func fakeOf(nft knftables.Interface) *knftables.Fake {
	if r, ok := nft.(*refusingUntilDeleted); ok {
		return r.Fake
	}
	return nft.(*knftables.Fake)
}

func testutilCounter(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

func (f *fakeCluster) eventually(t *testing.T, what string, check func(dump string) error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check(f.nft.Dump())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v\n%s", what, err, f.nft.Dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func contains(want ...string) func(string) error {
	return func(dump string) error {
		for _, w := range want {
			if !strings.Contains(dump, w) {
				return fmt.Errorf("table lacks %q", w)
			}
		}
		return nil
	}
}

func lacks(unwanted ...string) func(string) error {
	return func(dump string) error {
		for _, w := range unwanted {
			if strings.Contains(dump, w) {
				return fmt.Errorf("table still has %q", w)
			}
		}
		return nil
	}
}

// TestProxierFollowsTheAPI: Services and EndpointSlices created, changed and
// deleted reach the table; the node's address becomes a NodePort address;
// health follows the syncs.
func TestProxierFollowsTheAPI(t *testing.T) {
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.10"}}}}
	f := startFake(t, node)
	svc := makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 30080).typ(corev1.ServiceTypeNodePort).obj()
	if _, err := f.cs.CoreV1().Services("ns").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventually(t, "a Service without endpoints is refused", contains("10.96.0.20 . tcp . 80 : goto reject-chain", "tcp . 30080 : goto reject-chain", "nodeport-ips { 192.168.1.10 }"))
	slice := web("10.244.0.7")
	if _, err := f.cs.DiscoveryV1().EndpointSlices("ns").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventually(t, "endpoint programmed", contains("10.244.0.7 . 8080", "service-ips { 10.96.0.20 . tcp . 80 : goto service-"))
	f.eventually(t, "no reject left", lacks("goto reject-chain }"))
	slice = web("10.244.0.7", "10.244.0.8")
	if _, err := f.cs.DiscoveryV1().EndpointSlices("ns").Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventually(t, "second endpoint", contains("10.244.0.8 . 8080", "numgen random mod 2"))
	if err := f.cs.CoreV1().Services("ns").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventually(t, "Service gone", lacks("10.96.0.20", "10.244.0.7 . 8080"))

	rec := httptest.NewRecorder()
	f.p.health.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"nodeEligible": true`) {
		t.Errorf("/healthz after syncs: %d %s", rec.Code, rec.Body)
	}
}

// TestProxierReportsBadInput: a slice port matching no Service port and two
// Services claiming one external IP give a Warning Event each, once, and the
// good parts are served.
func TestProxierReportsBadInput(t *testing.T) {
	a := makeService("ns", "a", "10.96.0.30").port("", tcp, 80, 0).externalIPs("198.51.100.7").obj()
	b := makeService("ns", "b", "10.96.0.31").port("", tcp, 80, 0).externalIPs("198.51.100.7").obj()
	bad := makeSlice("ns", "a-1", "a").port("", tcp, 8080).ep("10.244.0.7", "node-a", "ready").port("nope", tcp, 9090).obj()
	f := startFake(t, a, b, bad, makeSlice("ns", "b-1", "b").port("", tcp, 8080).ep("10.244.0.9", "node-a", "ready").obj())
	f.eventually(t, "both Services served", contains("10.244.0.7 . 8080", "10.244.0.9 . 8080", "198.51.100.7 . tcp . 80 : goto external-"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		var reasons []string
		for _, e := range f.events {
			if e.Type == corev1.EventTypeWarning {
				reasons = append(reasons, e.InvolvedObject.Name+":"+e.Reason+":"+e.Message)
			}
		}
		f.mu.Unlock()
		all := strings.Join(reasons, "\n")
		if strings.Contains(all, `a:InvalidEndpointSlice:EndpointSlice a-1: port "nope" (TCP) matches no port of the Service`) &&
			strings.Contains(all, "b:DestinationInUse:destination 198.51.100.7 . tcp . 80 is already used by Service port ns/a/tcp/") {
			if len(reasons) != 2 {
				t.Errorf("want one Event per problem, got:\n%s", all)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Events:\n%s", all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProxierRecoversFromAForeignTable: a table holding something a sync
// cannot be reconciled with (an object of the same name and another shape,
// from an older version or by hand: the kernel refuses every transaction)
// makes full syncs fail; the second failure in a row deletes the table and
// writes it anew instead of failing forever.
func TestProxierRecoversFromAForeignTable(t *testing.T) {
	nft := &refusingUntilDeleted{Fake: knftables.NewFake(knftables.IPv4Family, "kubeparts-proxy"), refusing: true}
	f := startFakeWith(t, nft, makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 0).obj(), web("10.244.0.7"))
	f.eventually(t, "table rewritten", contains("10.244.0.7 . 8080"))
	if got := testutilCounter(f.p.metrics.syncFailures); got < 1 {
		t.Errorf("sync failures counted: %v, want at least 1", got)
	}
}

// refusingUntilDeleted refuses every transaction until one deletes the table.
type refusingUntilDeleted struct {
	*knftables.Fake
	mu       sync.Mutex
	refusing bool
}

func (r *refusingUntilDeleted) Run(ctx context.Context, tx *knftables.Transaction) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if strings.Contains(tx.String(), "delete table") {
		r.refusing = false
	}
	if r.refusing {
		return fmt.Errorf("Error: Could not process rule: File exists")
	}
	return r.Fake.Run(ctx, tx)
}

func TestTrimObject(t *testing.T) {
	slice := web("10.244.0.7")
	slice.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}}
	slice.Annotations = map[string]string{triggerTimeAnnotation: "2026-12-06T00:00:00Z", "kubectl.kubernetes.io/last-applied-configuration": "{...}"}
	out, err := trimObject(slice)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*discoveryv1.EndpointSlice)
	if got.ManagedFields != nil || len(got.Annotations) != 1 || got.Annotations[triggerTimeAnnotation] == "" || len(got.Endpoints) != 1 {
		t.Errorf("trimmed slice: %+v", got.ObjectMeta)
	}
	if got.Labels[discoveryv1.LabelServiceName] != "web" || len(got.Labels) != 1 {
		t.Errorf("labels %v: only the Service name is kept", got.Labels)
	}
	e := got.Endpoints[0]
	if e.TargetRef != nil || e.Hostname != nil || e.NodeName == nil || *e.NodeName != "node-a" || e.Addresses[0] != "10.244.0.7" || e.Conditions.Ready == nil {
		t.Errorf("trimmed endpoint: %+v", e)
	}
	// Node names are shared between slices.
	other, _ := trimObject(web("10.244.0.8"))
	if other.(*discoveryv1.EndpointSlice).Endpoints[0].NodeName != e.NodeName {
		t.Error("node name not interned")
	}

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10"}}
	out, _ = trimObject(svc)
	if s := out.(*corev1.Service); s.Labels != nil || s.Spec.Selector != nil || s.Spec.ClusterIP != "10.96.0.10" {
		t.Errorf("trimmed service: %+v", s)
	}
}

func TestEagerGC(t *testing.T) {
	for _, prev := range []int{100, 10, -1} {
		debug.SetGCPercent(prev)
		restore := eagerGC()
		during := debug.SetGCPercent(-1)
		debug.SetGCPercent(during)
		restore()
		after := debug.SetGCPercent(100)
		want := min(prev, fullSyncGCPercent)
		if prev < 0 {
			want = prev
		}
		if during != want || after != prev {
			t.Errorf("GOGC %d: %d during a full sync (want %d), %d after", prev, during, want, after)
		}
	}
}
