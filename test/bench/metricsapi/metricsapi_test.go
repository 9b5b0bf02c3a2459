// Package metricsapi benchmarks kubeparts-apiserver's metrics.k8s.io behind a
// real kube-apiserver (aggregator with front-proxy): request latency of a
// cluster-wide pod metrics list and memory per node and per 1000 pods.
package metricsapi

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubeparts/kubeparts/apiserver/scraper/scrapertest"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	os.Exit(framework.MainWith(m, "bench-metricsapi", &env, []framework.StartOption{framework.WithAggregator()}))
}

const (
	nodes       = 50
	podsPerNode = 20 // 1000 pods
	requests    = 300
)

// rssBytes reads a process's resident set size.
func rssBytes(b *testing.B, pid int) float64 {
	v, err := framework.RSSBytes(pid)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkPodMetricsList: GET /apis/metrics.k8s.io/v1beta1/pods (all
// namespaces, as `kubectl top pods -A`) through kube-apiserver with 1000 pods on
// 50 nodes, sequentially: p50 and p99 latency (goal p99 <= 100ms), and the
// server's RSS growth per node and per 1000 pods over an idle server started
// on an empty cluster (metrics-server documents about 2 MB per node).
func BenchmarkPodMetricsList(b *testing.B) {
	ctx := context.Background()
	empty := env.StartKubepartsAPIServer(b)
	idleRSS := rssBytes(b, empty.Pid)
	empty.Stop()

	start := time.Now().Add(-time.Minute)
	kubelets := make([]*scrapertest.Kubelet, nodes)
	body := func(node, step int) string {
		var pods []scrapertest.PodSample
		for p := range podsPerNode {
			pods = append(pods, scrapertest.PodSample{Namespace: "bench", Name: fmt.Sprintf("p-%02d-%02d", node, p),
				Containers: []scrapertest.ContainerSample{{Name: "app", CPUSeconds: 100 + float64(step*(p+1)), MemoryBytes: int64(32+p) << 20}}})
		}
		return scrapertest.Body(1000+float64(step*10), 4<<30, start.Add(time.Duration(step)*10*time.Second), pods...)
	}
	for n := range nodes {
		kubelets[n] = scrapertest.NewKubelet(b)
		kubelets[n].SetBody(body(n, 0))
		env.FakeNode(b, kubelets[n], fmt.Sprintf("bench-node-%02d", n))
	}
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	framework.Parallel(b, nodes*podsPerNode, func(i int) error {
		n, p := i/podsPerNode, i%podsPerNode
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("p-%02d-%02d", n, p), Labels: map[string]string{"app": "bench"}},
			Spec: corev1.PodSpec{NodeName: fmt.Sprintf("bench-node-%02d", n), Containers: []corev1.Container{{Name: "app", Image: "x"}}}}
		_, err := env.Client.CoreV1().Pods("bench").Create(ctx, pod, metav1.CreateOptions{})
		return err
	})

	s := env.StartKubepartsAPIServer(b, "--metric-resolution=5s")
	framework.Eventually(b, 60*time.Second, "every node scraped once", func() error {
		for n, k := range kubelets {
			if k.Requests() == 0 {
				return fmt.Errorf("node %d not scraped", n)
			}
		}
		return nil
	})
	for n, k := range kubelets {
		k.SetBody(body(n, 1))
	}
	cfg := rest.CopyConfig(env.Config)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	get := func() ([]byte, error) {
		return client.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/pods").DoRaw(ctx)
	}
	framework.Eventually(b, 60*time.Second, "1000 pods with metrics", func() error {
		raw, err := get()
		if err != nil {
			return err
		}
		if n := strings.Count(string(raw), `"containers"`); n != nodes*podsPerNode {
			return fmt.Errorf("%d pods with metrics", n)
		}
		return nil
	})

	lat := make([]time.Duration, 0, requests)
	b.ResetTimer()
	for range requests {
		t0 := time.Now()
		if _, err := get(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	loadedRSS := rssBytes(b, s.Pid)
	grow := loadedRSS - idleRSS
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(grow/nodes/1e6, "MB/node")
	b.ReportMetric(grow/1e6, "MB/1000pods")
	b.Logf("GET pods.metrics.k8s.io (1000 pods, 50 nodes) through kube-apiserver, %d requests: p50 %s, p99 %s; RSS idle %.1f MB, loaded %.1f MB: %.2f MB per node, %.1f MB per 1000 pods",
		requests, p50, p99, idleRSS/1e6, loadedRSS/1e6, grow/nodes/1e6, grow/1e6)
}
