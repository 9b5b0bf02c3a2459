package cloud

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// healthInterval is how often the Local load balancers' backends are
// checked, and healthTimeout how long one check may take; as a cloud load
// balancer's health check, a few seconds.
const (
	healthInterval = 2 * time.Second
	healthTimeout  = time.Second
)

// healthChecks remembers which backends of each Local load balancer answer
// their health check node port (kube-proxy answers 200 on a node with a
// ready local endpoint, 503 elsewhere).
type healthChecks struct {
	client *http.Client
	mu     sync.Mutex
	ok     map[string]map[string]bool // load balancer -> node -> passing
}

func newHealthChecks() *healthChecks {
	return &healthChecks{
		client: &http.Client{Timeout: healthTimeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}},
		ok:     map[string]map[string]bool{},
	}
}

// probe checks every backend of b at once; it reports whether any result
// changed.
func (h *healthChecks) probe(ctx context.Context, b *lb) bool {
	results := make([]bool, len(b.backends))
	var wg sync.WaitGroup
	for i, be := range b.backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.check(ctx, fmt.Sprintf("http://%s:%d/healthz", be.ip, b.healthCheckPort))
		}()
	}
	wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	prev := h.ok[b.name]
	now := map[string]bool{}
	changed := len(prev) != len(b.backends)
	for i, be := range b.backends {
		now[be.node] = results[i]
		if p, ok := prev[be.node]; !ok || p != results[i] {
			changed = true
		}
	}
	h.ok[b.name] = now
	return changed
}

func (h *healthChecks) check(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// healthy lists the backends of b to send to: all of them without a
// health check, else those passing it.
func (h *healthChecks) healthy(b *lb) []backend {
	if b.healthCheckPort == 0 {
		return b.backends
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []backend
	for _, be := range b.backends {
		if h.ok[b.name][be.node] {
			out = append(out, be)
		}
	}
	return out
}

func (h *healthChecks) forget(name string) {
	h.mu.Lock()
	delete(h.ok, name)
	h.mu.Unlock()
}
