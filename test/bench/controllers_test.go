// Package bench measures kubeparts pieces side by side with the stock ones on the same
// real kube-apiserver; run it with `make bench`.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

// CRDs: kubeparts-scheduler watches PodGroups. The audit log tells the namespace
// controller's requests apart by its ServiceAccount.
func TestMain(m *testing.M) {
	os.Exit(framework.MainWith(m, "bench", &env, []framework.StartOption{framework.WithAuditLog(namespaceControllerUser)}, framework.WithCRDs()))
}

// implementation is a controller manager under test, started with the same client QPS,
// burst, content type and worker counts as the other, each controller on a client and
// rate budget of its own under its own ServiceAccount (as kubeadm runs the manager).
type implementation struct {
	name   string
	binary string
	args   []string
}

func implementations(b *testing.B, qps, burst int) []implementation {
	bin, err := framework.BinDir()
	if err != nil {
		b.Fatal(err)
	}
	common := []string{"--controllers=deployment-controller,replicaset-controller", "--leader-elect=false", "--secure-port=0",
		fmt.Sprintf("--kube-api-qps=%d", qps), fmt.Sprintf("--kube-api-burst=%d", burst), "--kube-api-content-type=application/vnd.kubernetes.protobuf",
		"--concurrent-deployment-syncs=5", "--concurrent-replicaset-syncs=5", "--use-service-account-credentials=true"}
	return []implementation{
		{"stock", filepath.Join(bin, "kube-controller-manager"), common},
		{"kubeparts", filepath.Join(bin, "kubeparts-controller-manager"), append([]string{"--health-probe-bind-address=0", "--pprof-bind-address=" + pprofAddress()}, common...)},
	}
}

// pprofAddress serves kubeparts-controller-manager's /debug/pprof when
// BENCH_CM_PPROF names an address (e.g. 127.0.0.1:6061), to profile a run.
func pprofAddress() string {
	if a := os.Getenv("BENCH_CM_PPROF"); a != "" {
		return a
	}
	return "0"
}

// start runs the manager, its output in logName, and returns its pid and what stops it.
func (impl implementation) start(b *testing.B, logName string) (pid int, stop func()) {
	log, _ := os.Create(filepath.Join(env.LogDir, logName))
	cmd := exec.Command(impl.binary, append([]string{"--kubeconfig", env.WriteKubeconfig(b)}, impl.args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return cmd.Process.Pid, func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait(); log.Close() }
}

// run starts impl, waits for it to roll out a warm-up Deployment (informers synced),
// then times scenario and counts the controller's API writes during it.
func run(b *testing.B, impl implementation, scenario func(ctx context.Context, ns string) (pods int)) (elapsed time.Duration, writesPerPod, cpu float64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, err := env.Namespace(ctx, "bench-")
	if err != nil {
		b.Fatal(err)
	}
	framework.FakeKubelet(ctx, env.Client, ns, nil)
	pid, stop := impl.start(b, impl.name+".log")
	defer stop()
	createDeployment(b, ns, "warmup", 1)
	waitDeployments(b, ns, 1, 1)

	before := controllerWrites(b)
	cpuBefore := cpuSeconds(b, pid)
	began := time.Now()
	pods := scenario(ctx, ns)
	elapsed = time.Since(began)
	cpu = cpuSeconds(b, pid) - cpuBefore
	// Count what the controller still sends after the work is done (events queue behind
	// the client's rate limit): wait until its writes settle.
	after := settledWrites(b)
	writes, breakdown := diff(before, after)
	b.Logf("%s writes: %s", impl.name, breakdown)
	return elapsed, float64(writes) / float64(pods), cpu
}

func createDeployment(b *testing.B, ns, name string, replicas int32) {
	if _, err := env.Client.AppsV1().Deployments(ns).Create(context.Background(), framework.Deployment(ns, name, replicas), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
}

// waitDeployments waits until n Deployments of ns are rolled out with replicas each.
func waitDeployments(b *testing.B, ns string, n int, replicas int32) {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		list, err := env.Client.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		done := 0
		for _, d := range list.Items {
			if d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == replicas && d.Status.AvailableReplicas == replicas && d.Status.Replicas == replicas {
				done++
			}
		}
		if done >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("%d Deployments not rolled out in 10 minutes", n)
}

// rollout100x10 creates 100 Deployments of 10 replicas and waits until all are rolled out.
func rollout100x10(b *testing.B) func(ctx context.Context, ns string) int {
	return func(ctx context.Context, ns string) int {
		for i := range 100 {
			createDeployment(b, ns, fmt.Sprintf("d%03d", i), 10)
		}
		waitDeployments(b, ns, 100, 10) // the warm-up one has 1 replica: it does not count
		return 1000
	}
}

// scale0to1000 scales one ReplicaSet from 0 to 1000 and waits for its 1000 pods.
func scale0to1000(b *testing.B) func(ctx context.Context, ns string) int {
	return func(ctx context.Context, ns string) int {
		labels := map[string]string{"app": "big"}
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "big"},
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}}}},
		}
		if _, err := env.Client.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := env.Client.AppsV1().ReplicaSets(ns).Patch(ctx, "big", types.MergePatchType, []byte(`{"spec":{"replicas":1000}}`), metav1.PatchOptions{}); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Minute)
		for time.Now().Before(deadline) {
			got, err := env.Client.AppsV1().ReplicaSets(ns).Get(ctx, "big", metav1.GetOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if got.Status.Replicas == 1000 && got.Status.AvailableReplicas == 1000 {
				return 1000
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.Fatal("ReplicaSet not at 1000 available pods in 10 minutes")
		return 0
	}
}

// controllerWrites counts, from kube-apiserver's apiserver_request_total, the writes a
// workload controller makes: ReplicaSets, pods (not pod status: that is the fake
// kubelet), Deployment and ReplicaSet status, events. The benchmark's own creates of
// Deployments and namespaces are other resources; its one ReplicaSet create and patch
// in the scale scenario count for both implementations alike.
func controllerWrites(b *testing.B) map[string]int64 {
	raw, err := env.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	counts := map[string]int64{}
	s := bufio.NewScanner(strings.NewReader(string(raw)))
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		labels, value, _ := strings.Cut(line[len("apiserver_request_total{"):], "} ")
		l := map[string]string{}
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			l[k] = strings.Trim(v, `"`)
		}
		switch l["verb"] {
		case "POST", "PUT", "PATCH", "DELETE", "APPLY":
		default:
			continue
		}
		switch {
		case l["resource"] == "replicasets", l["resource"] == "events",
			l["resource"] == "pods" && l["subresource"] == "",
			l["resource"] == "deployments" && l["subresource"] == "status":
		default:
			continue
		}
		n, _ := strconv.ParseFloat(value, 64)
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		counts[key] += int64(n)
	}
	return counts
}

// settledWrites samples the write counters until they stay the same for 3 s (at most a
// minute).
func settledWrites(b *testing.B) map[string]int64 {
	last := controllerWrites(b)
	stableSince := time.Now()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		cur := controllerWrites(b)
		if n, _ := diff(last, cur); n != 0 {
			last, stableSince = cur, time.Now()
			continue
		}
		if time.Since(stableSince) >= 3*time.Second {
			break
		}
	}
	return last
}

// diff subtracts two write counts, returning the total and a readable breakdown.
func diff(before, after map[string]int64) (int64, string) {
	var total int64
	var parts []string
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			total += d
			parts = append(parts, fmt.Sprintf("%s=%d", k, d))
		}
	}
	sort.Strings(parts)
	return total, strings.Join(parts, " ")
}

// BenchmarkControllersSideBySide runs each scenario with the stock kube-controller-
// manager and with kubeparts-controller-manager, alternating which goes first, and
// reports the time ratio kubeparts/stock and the API writes per pod of each.
func BenchmarkControllersSideBySide(b *testing.B) {
	rounds := 1
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	for _, sc := range []struct {
		name       string
		fn         func(*testing.B) func(context.Context, string) int
		qps, burst int
	}{
		// The stock defaults: each controller is bound by its own budget (1000 pod
		// creations take 50 s at 20 QPS on either side).
		{"rollout-100x10", rollout100x10, 20, 30},
		{"scale-rs-0-to-1000", scale0to1000, 20, 30},
		// A budget that does not bind: the controllers' own speed.
		{"rollout-100x10-unthrottled", rollout100x10, 1000, 2000},
	} {
		impls := implementations(b, sc.qps, sc.burst)
		b.Run(sc.name, func(b *testing.B) {
			times := map[string]time.Duration{}
			writes, cpu := map[string]float64{}, map[string]float64{}
			for i := 0; i < b.N*rounds; i++ {
				order := impls
				if i%2 == 1 {
					order = []implementation{impls[1], impls[0]}
				}
				for _, impl := range order {
					elapsed, perPod, cpuSec := run(b, impl, sc.fn(b))
					times[impl.name] += elapsed
					writes[impl.name] += perPod
					cpu[impl.name] += cpuSec
					b.Logf("%s %s: %.1fs, %.2f writes/pod, %.1f CPU s", sc.name, impl.name, elapsed.Seconds(), perPod, cpuSec)
				}
			}
			n := float64(b.N * rounds)
			b.ReportMetric(times["kubeparts"].Seconds()/times["stock"].Seconds(), "time-ratio")
			b.ReportMetric(cpu["kubeparts"]/cpu["stock"], "cpu-ratio")
			b.ReportMetric(writes["stock"]/n, "stock-writes/pod")
			b.ReportMetric(writes["kubeparts"]/n, "kubeparts-writes/pod")
			b.ReportMetric(times["stock"].Seconds()/n, "stock-s")
			b.ReportMetric(times["kubeparts"].Seconds()/n, "kubeparts-s")
		})
	}
}
