// Package nodeagent benchmarks kubeparts-nodeagent against the stock kubelet
// on the same machine and containerd setup (`kubeparts up` with either).
package nodeagent

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeparts/kubeparts/internal/localcluster"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

// BenchmarkPodStartup: for each node agent (the stock kubelet, then
// kubeparts-nodeagent, alternating order over BENCH_ROUNDS rounds, default
// 2), a fresh `kubeparts up` cluster; batches of 1, 10 and 30 pods (the
// pause image, already imported) created at once; the latency of each from
// its creation to the watch seeing it Ready; p50 and p99 per batch size;
// the agent's RSS when idle, twice: as soon as the cluster serves pods
// ("idle"), and once it has run idle for BENCH_IDLE_SETTLE (default 90s;
// "idle settled": the kubelet's resident set grows by about a tenth over its
// first minute, as its housekeeping loops start, while the agent's stays
// flat); and with 30 pods running.
// Ratios are kubeparts/stock within the same run (lower is better).
func BenchmarkPodStartup(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the node (containerd) needs root")
	}
	bin, err := framework.BinDir()
	if err != nil {
		b.Fatal(err)
	}
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	settle := 90 * time.Second
	if v, err := time.ParseDuration(os.Getenv("BENCH_IDLE_SETTLE")); err == nil {
		settle = v
	}
	sizes := []int{1, 10, 30}
	type agent struct {
		name, process string
		stock         []string
	}
	agents := []agent{{"stock", "kubelet", []string{localcluster.RoleNodeAgent}}, {"kubeparts", "kubeparts-nodeagent", nil}}
	lat := map[string]map[int][]time.Duration{}
	rss := map[string]map[string][]float64{}
	for r := range rounds {
		order := agents
		if r%2 == 1 {
			order = []agent{agents[1], agents[0]}
		}
		for _, a := range order {
			if lat[a.name] == nil {
				lat[a.name], rss[a.name] = map[int][]time.Duration{}, map[string][]float64{}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			started := time.Now()
			c, err := localcluster.Start(ctx, localcluster.Options{DataDir: b.TempDir(), BinDir: bin, PortBase: 23443, Stock: a.stock, Out: discard{}})
			if err != nil {
				cancel()
				b.Fatal(err)
			}
			b.Cleanup(c.Stop) // also after a failure: no process or mount left behind
			cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
			if err != nil {
				b.Fatal(err)
			}
			cfg.QPS, cfg.Burst = 1000, 1000
			client := kubernetes.NewForConfigOrDie(cfg)
			waitServiceAccount(ctx, b, client)
			rss[a.name]["idle"] = append(rss[a.name]["idle"], rssMB(c.Pid(a.process)))
			// A measurement interval, not a wait for a condition: the
			// resident set of an agent left alone.
			select {
			case <-ctx.Done():
				b.Fatal(ctx.Err())
			case <-time.After(settle - time.Since(started)):
			}
			rss[a.name]["idle settled"] = append(rss[a.name]["idle settled"], rssMB(c.Pid(a.process)))
			for _, n := range sizes {
				d := startPods(ctx, b, client, n)
				lat[a.name][n] = append(lat[a.name][n], d...)
				if n == 30 {
					rss[a.name]["30 pods"] = append(rss[a.name]["30 pods"], rssMB(c.Pid(a.process)))
				}
				deletePods(ctx, b, client)
			}
			c.Stop()
			cancel()
		}
	}
	for _, n := range sizes {
		for _, q := range []float64{0.5, 0.99} {
			stock, ours := framework.Quantile(lat["stock"][n], q), framework.Quantile(lat["kubeparts"][n], q)
			label := fmt.Sprintf("%dpods_p%d", n, int(q*100))
			b.ReportMetric(ours.Seconds(), label+"_kubeparts_s")
			b.ReportMetric(stock.Seconds(), label+"_stock_s")
			b.ReportMetric(ours.Seconds()/stock.Seconds(), label+"_ratio")
		}
	}
	for _, k := range []string{"idle", "idle settled", "30 pods"} {
		ours, stock := mean(rss["kubeparts"][k]), mean(rss["stock"][k])
		label := "rss_" + strings.ReplaceAll(k, " ", "")
		b.ReportMetric(ours, label+"_kubeparts_MB")
		b.ReportMetric(stock, label+"_stock_MB")
		b.ReportMetric(ours/stock, label+"_ratio")
	}
}

// waitServiceAccount waits for the default service account: pods are
// refused until it exists.
func waitServiceAccount(ctx context.Context, b *testing.B, client kubernetes.Interface) {
	for {
		if _, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			b.Fatal("no default service account")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startPods creates n pods at once and returns each one's creation-to-Ready latency.
func startPods(ctx context.Context, b *testing.B, client kubernetes.Interface, n int) []time.Duration {
	w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { w.Stop() }()
	created := make([]time.Time, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d", i)},
				Spec: corev1.PodSpec{TerminationGracePeriodSeconds: new(int64), AutomountServiceAccountToken: new(bool),
					Containers: []corev1.Container{{Name: "c", Image: localcluster.SandboxImage, ImagePullPolicy: corev1.PullNever}}}}
			created[i] = time.Now()
			if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	ready := map[string]time.Time{}
	observe := func(pod *corev1.Pod) {
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				if _, seen := ready[pod.Name]; !seen {
					ready[pod.Name] = time.Now()
				}
			}
		}
	}
	for len(ready) < n {
		select {
		case <-ctx.Done():
			b.Fatalf("%d of %d pods Ready", len(ready), n)
		case ev, ok := <-w.ResultChan():
			if !ok {
				// The server ended the watch: list what is Ready now and watch again.
				list, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
				if err != nil {
					b.Fatal(err)
				}
				for i := range list.Items {
					observe(&list.Items[i])
				}
				if w, err = client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion}); err != nil {
					b.Fatal(err)
				}
				continue
			}
			if pod, isPod := ev.Object.(*corev1.Pod); isPod && ev.Type != watch.Deleted {
				observe(pod)
			}
		}
	}
	var out []time.Duration
	for i := range n {
		out = append(out, ready[fmt.Sprintf("bench-%d", i)].Sub(created[i]))
	}
	return out
}

func deletePods(ctx context.Context, b *testing.B, client kubernetes.Interface) {
	if err := client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		b.Fatal(err)
	}
	for {
		list, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err == nil && len(list.Items) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			b.Fatal("pods not deleted")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// rssMB is a process's resident set size in MB (0 if it is gone).
func rssMB(pid int) float64 {
	v, _ := framework.RSSBytes(pid)
	return v / (1 << 20)
}

func mean(v []float64) float64 {
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(max(len(v), 1))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
