package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"github.com/kubeparts/kubeparts/config"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

// schedulerUnderTest is a scheduler binary and the profile it runs: the stock
// kube-scheduler with its default plugins, or kubeparts-scheduler with the
// shipped profile (our plugins in place of the in-tree ones). Both get the
// same client QPS/burst and content type.
type schedulerUnderTest struct {
	name, binary string
	profile      []byte // nil: the stock default profile
}

func schedulers(b *testing.B) []schedulerUnderTest {
	bin, err := framework.BinDir()
	if err != nil {
		b.Fatal(err)
	}
	return []schedulerUnderTest{
		{"stock", filepath.Join(bin, "kube-scheduler"), nil},
		{"kubeparts", filepath.Join(bin, "kubeparts-scheduler"), config.SchedulerProfile},
	}
}

// BenchmarkScheduler: 5000 pending pods on 500 and on 5000 fake nodes (4 cpu,
// 32Gi, 110 pods each), client QPS/burst 5000, the stock scheduler and ours one
// after the other in alternating order (BENCH_ROUNDS rounds, default 2; keep it
// even). It reports pods scheduled per second, the ratio kubeparts/stock (goal
// >= 1) and scheduler CPU seconds per 1000 pods.
func BenchmarkScheduler(b *testing.B) {
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	const pods = 5000
	created := 0
	sizes := []int{500, 5000}
	if os.Getenv("BENCH_SCHEDULER_SMALL") != "" {
		sizes = sizes[:1]
	}
	for _, nodes := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			created = makeFakeNodes(b, created, nodes)
			impls := schedulers(b)
			rate := map[string][]float64{}
			cpu := map[string][]float64{}
			var ratios []float64
			for round := range rounds {
				order := impls
				if round%2 == 1 {
					order = []schedulerUnderTest{impls[1], impls[0]}
				}
				got := map[string]float64{}
				for _, s := range order {
					perSec, cpuPer1000 := scheduleBurst(b, s, pods)
					b.Logf("round %d %-9s %7.1f pods/s  %5.2f CPU s per 1000 pods", round+1, s.name, perSec, cpuPer1000)
					got[s.name] = perSec
					rate[s.name] = append(rate[s.name], perSec)
					cpu[s.name] = append(cpu[s.name], cpuPer1000)
				}
				ratios = append(ratios, got["kubeparts"]/got["stock"])
			}
			b.ReportMetric(median(rate["stock"]), "stock-pods/s")
			b.ReportMetric(median(rate["kubeparts"]), "kubeparts-pods/s")
			b.ReportMetric(geomean(ratios), "ratio")
			b.ReportMetric(median(cpu["stock"]), "stock-cpu-s/1000pods")
			b.ReportMetric(median(cpu["kubeparts"]), "kubeparts-cpu-s/1000pods")
			b.Logf("%d nodes: throughput ratio kubeparts/stock = %.2f (geometric mean of rounds %.2f); CPU s per 1000 pods: stock %.2f, kubeparts %.2f",
				nodes, geomean(ratios), ratios, median(cpu["stock"]), median(cpu["kubeparts"]))
		})
	}
}

// geomean averages per-round ratios. Rounds alternate the order (AB, BA, ...)
// and whichever runs second in a round is measured on a busier etcd (5000 more
// pods created and deleted): with an even number of rounds the geometric mean
// cancels that drift, where a median of two would pick one biased round.
func geomean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range v {
		sum += math.Log(x)
	}
	return math.Exp(sum / float64(len(v)))
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// makeFakeNodes grows the fake nodes from have to want. Pods tolerate the
// not-ready taint the apiserver puts on new nodes, so the nodes stay as created.
func makeFakeNodes(b *testing.B, have, want int) int {
	c := env.FastClient(b)
	alloc := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("32Gi"), corev1.ResourcePods: resource.MustParse("110"),
	}
	zones := []string{"zone-a", "zone-b", "zone-c"}
	framework.Parallel(b, want-have, func(i int) error {
		name := fmt.Sprintf("bench-node-%05d", have+i)
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, corev1.LabelTopologyZone: zones[(have+i)%3]}},
			Status:     corev1.NodeStatus{Capacity: alloc, Allocatable: alloc},
		}
		_, err := c.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{})
		return err
	})
	return want
}

// scheduleBurst creates n pending pods, then starts s and measures how fast
// it binds them, from its first bind to its last (so start-up and cache sync,
// the same for both, stay out), and the scheduler CPU used over that span.
// Creating the pods first keeps the benchmark's own writes from competing
// with the scheduler for the machine's two cores.
func scheduleBurst(b *testing.B, s schedulerUnderTest, n int) (podsPerSec, cpuPer1000 float64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, err := env.Namespace(ctx, "sched-bench-")
	if err != nil {
		b.Fatal(err)
	}
	c := env.FastClient(b)
	framework.Parallel(b, n, func(i int) error {
		_, err := c.CoreV1().Pods(ns).Create(ctx, benchPod(ns, fmt.Sprintf("p-%05d", i)), metav1.CreateOptions{})
		return err
	})

	var (
		mu          sync.Mutex
		bound       int
		first, last time.Time
		cpuAtFirst  float64
		pid         atomic.Int64
	)
	allBound := make(chan struct{})
	lw := cache.NewListWatchFromClient(c.CoreV1().RESTClient(), "pods", ns, fields.Everything())
	_, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{ListerWatcher: lw, ObjectType: &corev1.Pod{},
		Handler: cache.ResourceEventHandlerFuncs{UpdateFunc: func(oldObj, newObj any) {
			if oldObj.(*corev1.Pod).Spec.NodeName != "" || newObj.(*corev1.Pod).Spec.NodeName == "" {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			bound++
			last = time.Now()
			if bound == 1 {
				first = last
				cpuAtFirst = cpuSeconds(b, int(pid.Load()))
			}
			if bound == n {
				close(allBound)
			}
		}}})
	go ctrl.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), ctrl.HasSynced) {
		b.Fatal("pod informer did not sync")
	}

	proc := startBenchScheduler(b, s)
	pid.Store(int64(proc.Process.Pid))
	defer func() { _ = proc.Process.Signal(syscall.SIGTERM); _ = proc.Wait() }()
	select {
	case <-allBound:
	case <-time.After(15 * time.Minute):
		mu.Lock()
		b.Fatalf("%s: %d of %d pods bound after 15 minutes", s.name, bound, n)
	}
	used := cpuSeconds(b, proc.Process.Pid)
	mu.Lock()
	elapsed, used := last.Sub(first), used-cpuAtFirst
	mu.Unlock()
	// Empty the namespace right away (no kubelet: grace period 0) so the next
	// scheduler starts from empty nodes.
	if err := c.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{}); err != nil {
		b.Fatal(err)
	}
	framework.Eventually(b, 5*time.Minute, "bench pods deleted", func() error {
		l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil && len(l.Items) > 0 {
			err = fmt.Errorf("pods remain")
		}
		return err
	})
	return float64(n-1) / elapsed.Seconds(), used / float64(n) * 1000
}

func benchPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}}}},
			Tolerations: []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		},
	}
}

func startBenchScheduler(b *testing.B, s schedulerUnderTest) *exec.Cmd {
	cfg := map[string]any{"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration"}
	if s.profile != nil {
		if err := yaml.Unmarshal(s.profile, &cfg); err != nil {
			b.Fatal(err)
		}
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": env.WriteKubeconfig(b), "qps": 5000, "burst": 5000,
		"contentType": "application/vnd.kubernetes.protobuf"}
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "scheduler.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	log, err := os.Create(filepath.Join(env.LogDir, "scheduler-"+s.name+".log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { log.Close() })
	args := []string{"--config=" + path, "--secure-port=0"}
	if v := os.Getenv("BENCH_SCHEDULER_V"); v != "" {
		args = append(args, "-v="+v) // to see why pods wait, when a result looks off
	}
	cmd := exec.Command(s.binary, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return cmd
}

// cpuSeconds reads a process's user+system CPU time from /proc.
func cpuSeconds(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start after ")".
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}
