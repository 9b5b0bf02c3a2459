package app

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/controller-manager/pkg/clientbuilder"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kubeparts/kubeparts/controllers/internal/eventfilter"
	"github.com/kubeparts/kubeparts/internal/controllernames"
)

// Clients is what one controller talks to the API with, built as the stock manager
// builds each controller's client: its own user agent, its own rate limiter at
// --kube-api-qps/--kube-api-burst (scaled for the namespace controller), and with
// --use-service-account-credentials its own ServiceAccount identity. Reads go through
// the manager's shared cache, so informers are not duplicated per controller.
type Clients struct {
	// Name is the client's name (controllernames.ClientName).
	Name   string
	Config *rest.Config
	// Client reads from the shared cache and writes under this controller's identity.
	Client client.Client
	// APIReader reads from the API server, under this controller's identity.
	APIReader client.Reader
	// Recorder emits Events under this controller's identity, limited per object as
	// client-go's recorder limits them.
	Recorder events.EventRecorder
}

// clientFactory makes each controller's Clients.
type clientFactory struct {
	mgr     manager.Manager
	builder clientbuilder.ControllerClientBuilder
	qps     float32
	burst   int
}

// newClientFactory builds controllers' clients on root, the manager's own config.
// With service-account credentials, root only creates each controller's ServiceAccount
// and asks the TokenRequest API for its tokens, which are refreshed before they expire
// (client-go's cached token source); the controllers' configs carry no client
// certificate of the manager's.
func newClientFactory(mgr manager.Manager, root *rest.Config, o *Options) (*clientFactory, error) {
	f := &clientFactory{mgr: mgr, qps: o.KubeAPIQPS, burst: o.KubeAPIBurst}
	if !o.UseServiceAccountCredentials {
		f.builder = clientbuilder.SimpleControllerClientBuilder{ClientConfig: root}
		return f, nil
	}
	rootClient, err := kubernetes.NewForConfig(root)
	if err != nil {
		return nil, err
	}
	f.builder = clientbuilder.NewDynamicClientBuilder(rest.AnonymousClientConfig(root), rootClient.CoreV1(), "kube-system")
	return f, nil
}

// forController builds the Clients of the controller named controller, its QPS and
// burst scaled by qpsScale and burstScale (stock gives the namespace controller 20 and
// 100: a namespace takes a list and a delete per resource type).
func (f *clientFactory) forController(ctx context.Context, controller string, qpsScale float32, burstScale int) (*Clients, error) {
	name := controllernames.ClientName(controller)
	cfg, err := f.builder.Config(name)
	if err != nil {
		return nil, fmt.Errorf("client of %s: %w", controller, err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = f.qps*qpsScale, f.burst*burstScale
	// One limiter for every client built from cfg (typed, metadata, discovery): the
	// controller's budget is one, as stock's is per controller.
	cfg.RateLimiter = &timedLimiter{RateLimiter: flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst),
		wait: clientRateLimiterDuration.WithLabelValues(controller)}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &countingTransport{next: rt, controller: controller}
	})
	cfg.WarningHandler = warningsOnce
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	opts := client.Options{HTTPClient: httpClient, Scheme: f.mgr.GetScheme(), Mapper: f.mgr.GetRESTMapper()}
	reader, err := client.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	opts.Cache = &client.CacheOptions{Reader: f.mgr.GetCache()}
	c, err := client.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	broadcaster := events.NewBroadcaster(&serialSink{EventSink: &events.EventSinkImpl{Interface: cs.EventsV1()}})
	broadcaster.StartRecordingToSink(ctx.Done())
	go func() { <-ctx.Done(); broadcaster.Shutdown() }()
	return &Clients{
		Name: name, Config: cfg, Client: c, APIReader: reader,
		Recorder: eventfilter.New(broadcaster.NewRecorder(f.mgr.GetScheme(), controller)),
	}, nil
}

// serialSink sends a controller's Events one at a time. client-go's events
// broadcaster posts each Event from a goroutine of its own, so a burst of Events
// (one per pod created) would queue at the controller's rate limiter beside its
// real work and take most of its budget; stock's recorder posts from one goroutine,
// so its Events wait behind the work. One at a time keeps that order.
type serialSink struct {
	mu sync.Mutex
	events.EventSink
}

func (s *serialSink) Create(ctx context.Context, e *eventsv1.Event) (*eventsv1.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.EventSink.Create(ctx, e)
}

func (s *serialSink) Update(ctx context.Context, e *eventsv1.Event) (*eventsv1.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.EventSink.Update(ctx, e)
}

func (s *serialSink) Patch(ctx context.Context, old *eventsv1.Event, data []byte) (*eventsv1.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.EventSink.Patch(ctx, old, data)
}

// Client metrics by controller: client-go's own (rest_client_*) are by host, so an
// operator could not tell which controller is throttled.
var (
	clientRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubeparts_controller_client_requests_total",
		Help: "Requests a controller's client sent to kube-apiserver, by controller, method and HTTP code (0: no response).",
	}, []string{"controller", "method", "code"})
	clientRateLimiterDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kubeparts_controller_client_rate_limiter_duration_seconds",
		Help:    "Time a controller's requests waited for its client-side rate limiter.",
		Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"controller"})
)

func init() { ctrlmetrics.Registry.MustRegister(clientRequests, clientRateLimiterDuration) }

type countingTransport struct {
	next       http.RoundTripper
	controller string
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	code := "0"
	if resp != nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	clientRequests.WithLabelValues(t.controller, req.Method, code).Inc()
	return resp, err
}

// timedLimiter observes how long each request waits for the limiter.
type timedLimiter struct {
	flowcontrol.RateLimiter
	wait prometheus.Observer
}

func (l *timedLimiter) Wait(ctx context.Context) error {
	start := time.Now()
	err := l.RateLimiter.Wait(ctx)
	l.wait.Observe(time.Since(start).Seconds())
	return err
}

func (l *timedLimiter) Accept() {
	start := time.Now()
	l.RateLimiter.Accept()
	l.wait.Observe(time.Since(start).Seconds())
}

// warningsOnce logs each distinct API warning once per process: the namespace
// controller lists every resource of every namespace it empties, and the deprecated
// v1 Endpoints would otherwise warn on each.
var warningsOnce = &onceWarnings{seen: map[string]bool{}}

type onceWarnings struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (w *onceWarnings) HandleWarningHeader(code int, agent string, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	first := !w.seen[text]
	w.seen[text] = true
	w.mu.Unlock()
	if first {
		klog.Warningf("kube-apiserver: %s (logged once)", text)
	}
}
