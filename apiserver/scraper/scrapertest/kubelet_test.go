package scrapertest

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/component-base/metrics/testutil"
)

func TestBodyIsValidExposition(t *testing.T) {
	body := Body(12.5, 1<<30, time.UnixMilli(1_700_000_000_123),
		PodSample{Namespace: "default", Name: "web", Containers: []ContainerSample{{Name: "app", CPUSeconds: 1.5, MemoryBytes: 10 << 20}, {Name: "proxy", CPUSeconds: 0.25, MemoryBytes: 5 << 20}}},
		PodSample{Namespace: `we"ird`, Name: `a\b`, Containers: []ContainerSample{{Name: "x", CPUSeconds: 1e-9, MemoryBytes: 1}}},
	)
	families, err := testutil.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("invalid exposition: %v\n%s", err, body)
	}
	for name, n := range map[string]int{
		"container_cpu_usage_seconds_total": 3, "container_memory_working_set_bytes": 3, "container_start_time_seconds": 3,
		"node_cpu_usage_seconds_total": 1, "node_memory_working_set_bytes": 1,
		"pod_cpu_usage_seconds_total": 2, "pod_memory_working_set_bytes": 2,
		"resource_scrape_error": 1, "scrape_error": 1,
	} {
		if got := len(families[name].GetMetric()); got != n {
			t.Errorf("%s: %d series, want %d", name, got, n)
		}
	}
	if m := families["node_cpu_usage_seconds_total"].GetMetric()[0]; m.GetCounter().GetValue() != 12.5 || m.GetTimestampMs() != 1_700_000_000_123 {
		t.Errorf("node cpu sample = %v", m)
	}
}

func TestKubelet(t *testing.T) {
	for _, tls := range []bool{false, true} {
		k := NewKubelet(t)
		if tls {
			k = NewTLSKubelet(t)
		}
		k.SetBody("node_cpu_usage_seconds_total 1\n")
		node := k.Node("n1")
		url := k.Scheme() + "://" + net.JoinHostPort(node.Status.Addresses[0].Address, strconv.Itoa(k.Port())) + "/metrics/resource"
		if int(node.Status.DaemonEndpoints.KubeletEndpoint.Port) != k.Port() {
			t.Fatalf("daemon endpoint port %d, server port %d", node.Status.DaemonEndpoints.KubeletEndpoint.Port, k.Port())
		}
		get := func() (int, string) {
			resp, err := k.Client().Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := get(); code != http.StatusOK || body != "node_cpu_usage_seconds_total 1\n" {
			t.Errorf("tls=%v: got %d %q", tls, code, body)
		}
		k.SetStatus(http.StatusForbidden)
		if code, _ := get(); code != http.StatusForbidden {
			t.Errorf("tls=%v: status %d, want 403", tls, code)
		}
		k.Hang()
		client := k.Client()
		client.Timeout = 100 * time.Millisecond
		if _, err := client.Get(url); err == nil {
			t.Errorf("tls=%v: hanging kubelet answered", tls)
		}
		if k.Requests() != 3 {
			t.Errorf("tls=%v: %d requests, want 3", tls, k.Requests())
		}
	}
}
