// Package scrapertest provides a fake kubelet serving /metrics/resource for
// tests of the scraper and of the metrics API built on it.
package scrapertest

import (
	"cmp"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kubelet is a fake kubelet. Point a scraper at it with Node (the node's
// daemon endpoint carries the server's port, so leave Options.Port at 0) and
// Options.Scheme = Scheme(); use Client() as the scraper's HTTP client.
type Kubelet struct {
	srv     *httptest.Server
	release chan struct{} // closed when the test ends, to free hanging requests

	mu       sync.Mutex
	body     string
	status   int
	hang     bool
	requests int
	closed   bool
}

// NewKubelet starts a plain HTTP fake kubelet that answers 200 with an empty
// body until SetBody is called. It is shut down when the test ends.
func NewKubelet(t testing.TB) *Kubelet {
	return newKubelet(t, false)
}

// NewTLSKubelet is NewKubelet over HTTPS with a self-signed certificate for
// 127.0.0.1; Client() trusts it.
func NewTLSKubelet(t testing.TB) *Kubelet {
	return newKubelet(t, true)
}

func newKubelet(t testing.TB, tls bool) *Kubelet {
	t.Helper()
	k := &Kubelet{status: http.StatusOK, release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics/resource", k.serve)
	if tls {
		k.srv = httptest.NewTLSServer(mux)
	} else {
		k.srv = httptest.NewServer(mux)
	}
	// Cleanups run last-in first-out: free hanging handlers, then close.
	t.Cleanup(k.Close)
	return k
}

func (k *Kubelet) serve(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.requests++
	body, status, hang := k.body, k.status, k.hang
	k.mu.Unlock()
	if hang {
		select {
		case <-r.Context().Done():
		case <-k.release:
		}
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// Close frees hanging requests and stops the server. It is called
// automatically when the test ends and may be called earlier (e.g. before
// checking for leaked goroutines).
func (k *Kubelet) Close() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	k.closed = true
	close(k.release)
	k.mu.Unlock()
	k.srv.Close()
}

// SetBody sets the body of later responses.
func (k *Kubelet) SetBody(body string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.body = body
}

// SetStatus sets the HTTP status of later responses.
func (k *Kubelet) SetStatus(code int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.status = code
}

// Hang makes later requests wait, without answering, until the client gives
// up or the test ends.
func (k *Kubelet) Hang() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.hang = true
}

// Requests returns how many requests the kubelet has received.
func (k *Kubelet) Requests() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.requests
}

// URL is the server's base URL.
func (k *Kubelet) URL() string { return k.srv.URL }

// Scheme is "http" or "https", for Options.Scheme.
func (k *Kubelet) Scheme() string {
	if k.srv.TLS != nil {
		return "https"
	}
	return "http"
}

// Port is the server's port.
func (k *Kubelet) Port() int {
	return k.srv.Listener.Addr().(*net.TCPAddr).Port
}

// Client returns an HTTP client for the server (trusting its certificate
// when it uses TLS).
func (k *Kubelet) Client() *http.Client { return k.srv.Client() }

// Node returns a Ready Node whose InternalIP and kubelet daemon endpoint
// point at this fake kubelet.
func (k *Kubelet) Node(name string) *corev1.Node {
	addr := k.srv.Listener.Addr().(*net.TCPAddr)
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: addr.IP.String()},
				{Type: corev1.NodeHostName, Address: name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{
				KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(addr.Port)},
			},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

// PodSample is one pod's cumulative CPU and working set, per container.
type PodSample struct {
	Namespace, Name string
	Containers      []ContainerSample
}

// ContainerSample is one container's cumulative CPU time (core-seconds) and
// memory working set (bytes).
type ContainerSample struct {
	Name        string
	CPUSeconds  float64
	MemoryBytes int64
}

// Body renders a /metrics/resource body shaped like kubelet v1.36's: families
// sorted by name with HELP/TYPE lines, series sorted by their labels, label
// names sorted, millisecond timestamps on usage samples, containers started an
// hour before ts. Pod-level series are the sums of the container series.
func Body(nodeCPUSeconds float64, nodeMemBytes int64, ts time.Time, pods ...PodSample) string {
	type series struct {
		labels string
		value  float64
	}
	ms := strconv.FormatInt(ts.UnixMilli(), 10)
	started := float64(ts.Add(-time.Hour).Unix())
	var ctrCPU, ctrMem, ctrStart, podCPU, podMem []series
	for _, p := range pods {
		podLabels := fmt.Sprintf(`namespace="%s",pod="%s"`, escape(p.Namespace), escape(p.Name))
		var cpu float64
		var mem int64
		for _, c := range p.Containers {
			l := fmt.Sprintf(`container="%s",%s`, escape(c.Name), podLabels)
			ctrCPU = append(ctrCPU, series{l, c.CPUSeconds})
			ctrMem = append(ctrMem, series{l, float64(c.MemoryBytes)})
			ctrStart = append(ctrStart, series{l, started})
			cpu += c.CPUSeconds
			mem += c.MemoryBytes
		}
		podCPU = append(podCPU, series{podLabels, cpu})
		podMem = append(podMem, series{podLabels, float64(mem)})
	}

	var b strings.Builder
	family := func(name, typ, help string, ss []series, stamp bool) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		slices.SortFunc(ss, func(x, y series) int { return cmp.Compare(x.labels, y.labels) })
		for _, s := range ss {
			b.WriteString(name)
			if s.labels != "" {
				b.WriteString("{" + s.labels + "}")
			}
			b.WriteString(" " + strconv.FormatFloat(s.value, 'g', -1, 64))
			if stamp {
				b.WriteString(" " + ms)
			}
			b.WriteString("\n")
		}
	}
	family("container_cpu_usage_seconds_total", "counter", "[STABLE] Cumulative cpu time consumed by the container in core-seconds", ctrCPU, true)
	family("container_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the container in bytes", ctrMem, true)
	family("container_start_time_seconds", "gauge", "[STABLE] Start time of the container since unix epoch in seconds", ctrStart, false)
	family("node_cpu_usage_seconds_total", "counter", "[STABLE] Cumulative cpu time consumed by the node in core-seconds", []series{{"", nodeCPUSeconds}}, true)
	family("node_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the node in bytes", []series{{"", float64(nodeMemBytes)}}, true)
	family("pod_cpu_usage_seconds_total", "counter", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds", podCPU, true)
	family("pod_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the pod in bytes", podMem, true)
	family("resource_scrape_error", "gauge", "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise", []series{{"", 0}}, false)
	family("scrape_error", "gauge", "[ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise", []series{{"", 0}}, false)
	return b.String()
}

func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
