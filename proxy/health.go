package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// toBeDeletedTaint marks a node the cluster autoscaler is about to remove;
// load balancers should stop sending it traffic, so /healthz fails.
const toBeDeletedTaint = "ToBeDeletedByClusterAutoscaler"

// healthState is kube-proxy's notion of health: a change that waits longer
// than the timeout (twice the sync period) for a sync makes the proxy stale.
type healthState struct {
	clock   clock.Clock
	timeout time.Duration
	m       *metrics

	mu            sync.Mutex
	lastUpdated   time.Time
	oldestPending time.Time // zero: nothing waits
	nodeEligible  bool
}

func newHealthState(c clock.Clock, timeout time.Duration, m *metrics) *healthState {
	return &healthState{clock: c, timeout: timeout, m: m, nodeEligible: true}
}

// queued records that a change waits for a sync.
func (h *healthState) queued() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.oldestPending.IsZero() {
		h.oldestPending = h.clock.Now()
	}
}

// updated records a successful sync.
func (h *healthState) updated() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.oldestPending = time.Time{}
	h.lastUpdated = h.clock.Now()
}

func (h *healthState) syncNode(node *corev1.Node) {
	eligible := node.DeletionTimestamp.IsZero()
	for _, t := range node.Spec.Taints {
		if t.Key == toBeDeletedTaint {
			eligible = false
		}
	}
	h.mu.Lock()
	h.nodeEligible = eligible
	h.mu.Unlock()
}

func (h *healthState) healthy() (bool, time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ok := h.oldestPending.IsZero() || h.clock.Since(h.oldestPending) < h.timeout
	return ok, h.lastUpdated, h.nodeEligible
}

// handler serves /healthz (node eligibility counts) and /livez (it does not)
// with kube-proxy's JSON bodies.
func (h *healthState) handler() http.Handler {
	mux := http.NewServeMux()
	serve := func(withNode bool) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			ok, last, eligible := h.healthy()
			if withNode {
				ok = ok && eligible
			}
			now := h.clock.Now()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			code := http.StatusServiceUnavailable
			if ok {
				code = http.StatusOK
				// Healthy means current: kube-proxy reports now, not the last sync.
				last = now
			}
			counter := h.m.livezTotal
			if withNode {
				counter = h.m.healthzTotal
			}
			counter.WithLabelValues(fmt.Sprint(code)).Inc()
			w.WriteHeader(code)
			if withNode {
				fmt.Fprintf(w, `{"lastUpdated": %q,"currentTime": %q, "nodeEligible": %v}`, last, now, eligible)
			} else {
				fmt.Fprintf(w, `{"lastUpdated": %q,"currentTime": %q}`, last, now)
			}
		}
	}
	mux.HandleFunc("/healthz", serve(true))
	mux.HandleFunc("/livez", serve(false))
	return mux
}

// serviceHealthServers serve the health check node ports of Services with
// externalTrafficPolicy Local: 200 while this node has a ready endpoint,
// 503 otherwise, so an external load balancer sends traffic only to nodes
// that can answer it.
type serviceHealthServers struct {
	mu      sync.Mutex
	servers map[int32]*serviceHealthServer
	listen  func(port int32) (net.Listener, error)
	// healthy says whether the proxy itself is healthy (serviceProxyHealthy).
	healthy func() bool
}

type serviceHealthServer struct {
	srv       *http.Server
	mu        sync.Mutex
	namespace string
	name      string
	local     int
	healthy   func() bool
}

func newServiceHealthServers() *serviceHealthServers {
	return &serviceHealthServers{servers: map[int32]*serviceHealthServer{}, listen: func(port int32) (net.Listener, error) {
		return net.Listen("tcp", fmt.Sprintf(":%d", port))
	}}
}

// healthCheck is the state of one health check node port.
type healthCheck struct {
	namespace, name string
	localEndpoints  int
}

// sync starts, updates and stops servers to match want (port -> service).
// A port that cannot be opened is reported through the returned errors and
// retried at the next sync.
func (s *serviceHealthServers) sync(want map[int32]healthCheck) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for port, srv := range s.servers {
		if _, ok := want[port]; !ok {
			_ = srv.srv.Close()
			delete(s.servers, port)
		}
	}
	for port, hc := range want {
		srv := s.servers[port]
		if srv == nil {
			l, err := s.listen(port)
			if err != nil {
				errs = append(errs, fmt.Errorf("health check node port %d of Service %s/%s: %w", port, hc.namespace, hc.name, err))
				continue
			}
			srv = &serviceHealthServer{healthy: s.healthy}
			srv.srv = &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
			go func() {
				if err := srv.srv.Serve(l); err != nil && err != http.ErrServerClosed {
					klog.ErrorS(err, "Health check node port server stopped", "port", port)
				}
			}()
			s.servers[port] = srv
		}
		srv.mu.Lock()
		srv.namespace, srv.name, srv.local = hc.namespace, hc.name, hc.localEndpoints
		srv.mu.Unlock()
	}
	return errs
}

func (s *serviceHealthServers) close() {
	s.sync(nil)
}

func (srv *serviceHealthServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	srv.mu.Lock()
	var body struct {
		Service struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
		} `json:"service"`
		LocalEndpoints      int  `json:"localEndpoints"`
		ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
	}
	body.Service.Namespace, body.Service.Name, body.LocalEndpoints = srv.namespace, srv.name, srv.local
	body.ServiceProxyHealthy = srv.healthy == nil || srv.healthy()
	srv.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if body.LocalEndpoints == 0 || !body.ServiceProxyHealthy {
		w.WriteHeader(http.StatusServiceUnavailable)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	_ = json.NewEncoder(w).Encode(body)
}

// serve runs an HTTP server on addr until ctx ends; an empty address or port
// 0 disables it, as in kube-proxy.
func serve(ctx context.Context, addr string, h http.Handler) error {
	if addr == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
			klog.ErrorS(err, "HTTP server stopped", "address", addr)
		}
	}()
	return nil
}
