package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// The leader election settings every piece runs with (the upstream defaults): a dead
// leader's Lease expires after the duration, and candidates retry every period.
const (
	leaseDuration = 15 * time.Second
	retryPeriod   = 2 * time.Second
)

// haCluster is a running HA `kubeparts up` as the tests see it.
type haCluster struct {
	t      testing.TB
	bin    string
	kc     string
	prefix string // the control-plane hosts' names start with it: <prefix>cp1...
	client kubernetes.Interface
}

func newHACluster(t testing.TB, bin, kc, nodeName string) *haCluster {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 15 * time.Second
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &haCluster{t: t, bin: bin, kc: kc, prefix: nodeName + "-", client: client}
}

// holder is the host whose component holds the Lease kube-system/name ("" when nobody
// does) and the holder's whole identity: leader election identities are
// <host name>_<uuid>, and each control-plane host has its own host name.
func (h *haCluster) holder(name string) (host, identity string) {
	l, err := h.client.CoordinationV1().Leases("kube-system").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return "", ""
	}
	host, _, _ = strings.Cut(*l.Spec.HolderIdentity, "_")
	return host, *l.Spec.HolderIdentity
}

// hostPids are the processes of a host's component: the binary, started with an
// argument naming the host (its member name, cert dir or kubeconfig for that host).
func hostPids(t testing.TB, binary, host string) []int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) < 2 || filepath.Base(args[0]) != binary {
			continue
		}
		for _, a := range args[1:] {
			if strings.HasSuffix(a, "-"+host) || strings.HasSuffix(a, "="+host) || strings.Contains(a, "-"+host+"/") {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// signalHost sends sig to every control-plane process of host (a frozen host with
// SIGSTOP: it keeps its sockets but answers nothing, as a hung machine does).
func signalHost(t testing.TB, host string, sig syscall.Signal, binaries ...string) {
	t.Helper()
	n := 0
	for _, b := range binaries {
		for _, pid := range hostPids(t, b, host) {
			if err := syscall.Kill(pid, sig); err != nil {
				t.Fatalf("signal %v to %s of %s (pid %d): %v", sig, b, host, pid, err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no process of %s on %s", strings.Join(binaries, ", "), host)
	}
}

var hostBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubeparts-controller-manager", "kubeparts-scheduler", "kubeparts-apiserver"}

// writer creates ConfigMaps one after the other until stopped, remembering each one the
// API acknowledged and counting failures per phase.
type writer struct {
	mu       sync.Mutex
	acked    []string
	failures map[string]int
	writes   map[string]int
	phase    string
	lastErr  string
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// startWriter makes namespace ns and writes there, returning once 20 writes were
// acknowledged.
func startWriter(t testing.TB, h *haCluster, ns string) *writer {
	t.Helper()
	if _, err := kubectl(t, h.bin, h.kc, "create", "namespace", ns); err != nil {
		t.Fatal(err)
	}
	w := &writer{failures: map[string]int{}, writes: map[string]int{}, phase: "before", stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			name := fmt.Sprintf("w-%05d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := h.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"i": strconv.Itoa(i)}}, metav1.CreateOptions{})
			cancel()
			w.mu.Lock()
			w.writes[w.phase]++
			if err != nil {
				w.failures[w.phase]++
				w.lastErr = err.Error()
			} else {
				w.acked = append(w.acked, name)
			}
			w.mu.Unlock()
			if err != nil {
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	// A subtest that fails half-way must not leave it writing into the next ones.
	t.Cleanup(w.halt)
	w.waitAcked(t, "before", 20, time.Minute)
	return w
}

// halt stops the writes and waits for the last one (idempotent).
func (w *writer) halt() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

// waitAcked waits until n writes of phase were acknowledged.
func (w *writer) waitAcked(t testing.TB, phase string, n int, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%d acknowledged writes %s", n, phase), func() error {
		if writes, failed := w.count(phase); writes-failed < n {
			return fmt.Errorf("%d acknowledged of %d", writes-failed, writes)
		}
		return nil
	})
}

func (w *writer) setPhase(p string) { w.mu.Lock(); w.phase = p; w.mu.Unlock() }

func (w *writer) count(phase string) (int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes[phase], w.failures[phase]
}

// finish stops the writer and checks every acknowledged ConfigMap is there.
func (w *writer) finish(t testing.TB, h *haCluster, ns string) {
	t.Helper()
	w.halt()
	list, err := h.client.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, cm := range list.Items {
		have[cm.Name] = true
	}
	var lost []string
	for _, name := range w.acked {
		if !have[name] {
			lost = append(lost, name)
		}
	}
	phases := []string{}
	for p := range w.writes {
		phases = append(phases, fmt.Sprintf("%s: %d writes, %d failed", p, w.writes[p], w.failures[p]))
	}
	sort.Strings(phases)
	t.Logf("writes %s; %d acknowledged, %d lost; last error: %s", strings.Join(phases, "; "), len(w.acked), len(lost), w.lastErr)
	if len(lost) > 0 {
		t.Errorf("acknowledged writes lost: %v", lost)
	}
}

// statuses is `kubectl get <resource> -o json`'s statuses, by object name.
func (h *haCluster) statuses(resource string) (map[string]map[string]any, error) {
	out, err := kubectl(h.t, h.bin, h.kc, "get", resource, "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	byName := map[string]map[string]any{}
	for _, i := range list.Items {
		byName[i.Metadata.Name] = i.Status
	}
	return byName, nil
}

func (h *haCluster) componentsView() (map[string]map[string]any, error) {
	return h.statuses("components")
}

func (h *haCluster) etcdMembers() (map[string]map[string]any, error) {
	return h.statuses("etcdmembers")
}

// instancesLed checks a component lists one copy per control-plane host, exactly one
// of them the leader, and returns the leader's host.
func instancesLed(status map[string]any, hosts int) (string, error) {
	instances, _ := status["instances"].([]any)
	if len(instances) != hosts {
		return "", fmt.Errorf("%d instances, want %d: %v", len(instances), hosts, status)
	}
	var leaders []string
	for _, i := range instances {
		inst := i.(map[string]any)
		if inst["leader"] == true {
			leaders = append(leaders, inst["name"].(string))
		}
		if inst["health"] != "Healthy" {
			return "", fmt.Errorf("instance %v not Healthy", inst)
		}
	}
	if len(leaders) != 1 {
		return "", fmt.Errorf("leaders %v, want exactly one (%v)", leaders, status)
	}
	return leaders[0], nil
}

// instanceHealth maps each copy of a component to its health.
func instanceHealth(status map[string]any) map[string]any {
	out := map[string]any{}
	instances, _ := status["instances"].([]any)
	for _, i := range instances {
		inst := i.(map[string]any)
		out[fmt.Sprint(inst["name"])] = inst["health"]
	}
	return out
}

// killLeaderAndTime kill -9s the component holding lease and returns the host that led
// and how long until another copy held the Lease: another host's, or the killed one
// started again by the supervisor (a new identity).
func (h *haCluster) killLeaderAndTime(t testing.TB, binary, lease string) (string, time.Duration) {
	t.Helper()
	leader, identity := h.holder(lease)
	if leader == "" {
		t.Fatalf("nobody holds Lease %s", lease)
	}
	pids := hostPids(t, binary, leader)
	if len(pids) != 1 {
		t.Fatalf("%s on %s: pids %v, want one", binary, leader, pids)
	}
	killed := time.Now()
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var took time.Duration
	var now string
	eventually(t, 2*leaseDuration+10*time.Second, "another "+binary+" holding Lease "+lease, func() error {
		var who string
		now, who = h.holder(lease)
		if who == "" || who == identity {
			return fmt.Errorf("held by %q", who)
		}
		took = time.Since(killed)
		return nil
	})
	t.Logf("%s: leader on %s killed, Lease %s taken by the copy on %s after %s (lease %s + retry %s)", binary, leader, lease, now, took.Round(100*time.Millisecond), leaseDuration, retryPeriod)
	return leader, took
}

// fakeNode is a Node without an agent, kept Ready by the test renewing its Lease: the
// scheduler binds pods to it, nothing runs them.
func (h *haCluster) fakeNode(t *testing.T, name string) func() {
	t.Helper()
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name, "kubeparts.dev/fake": "true"}}}
	if _, err := h.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	capacity := corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1000"), corev1.ResourceCPU: resource.MustParse("1000"), corev1.ResourceMemory: resource.MustParse("1Ti")}
	heartbeat := func() {
		n, err := h.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return
		}
		now := metav1.Now()
		n.Status.Capacity, n.Status.Allocatable = capacity, capacity
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}}
		_, _ = h.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		leases := h.client.CoordinationV1().Leases("kube-node-lease")
		l, err := leases.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To[int32](40)}}
			l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
			_, _ = leases.Create(ctx, l, metav1.CreateOptions{})
			return
		}
		l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	heartbeat()
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				heartbeat()
			}
		}
	}()
	return func() { close(stop) }
}

// TestUpHAStacked runs `kubeparts up --control-planes 3` (stacked etcd) and the failures
// the HA topology must survive: the views, a leader killed in the middle of the work
// of each leader-elected kubeparts piece, a control-plane host lost under steady writes,
// two of three etcd members lost and back, and a restart of the whole `up`.
func TestUpHAStacked(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	data := t.TempDir()
	// No cloud: its node lifecycle would delete the agentless Node the scheduler case
	// binds to, as a cloud deletes a Node whose instance does not exist.
	args := []string{"--bin-dir", bin, "--data-dir", data, "--port-base", "31443", "--node-name", "kpha", "--control-planes", "3", "--stock", "cloud-controller-manager"}
	start := time.Now()
	u := startUp(t, bin, args...)
	kc := u.waitReady(t, 6*time.Minute)
	t.Logf("3 control-plane hosts with stacked etcd ready in %s", time.Since(start).Round(time.Second))
	h := newHACluster(t, bin, kc, "kpha")
	hosts := []string{"kpha-cp1", "kpha-cp2", "kpha-cp3"}

	t.Run("views", func(t *testing.T) {
		eventually(t, 2*time.Minute, "every leader-elected piece on 3 hosts, one leader each", func() error {
			view, err := h.componentsView()
			if err != nil {
				return err
			}
			for _, name := range []string{"kube-controller-manager", "kubeparts-controller-manager", "kubeparts-scheduler"} {
				if view[name] == nil {
					return fmt.Errorf("no component %s", name)
				}
				if _, err := instancesLed(view[name], len(hosts)); err != nil {
					return fmt.Errorf("%s: %v", name, err)
				}
			}
			// kubeparts-apiserver, not leader-elected, lists its copies too.
			copies := instanceHealth(view["kubeparts-apiserver"])
			for _, host := range hosts {
				if copies[host] != "Healthy" || len(copies) != len(hosts) {
					return fmt.Errorf("kubeparts-apiserver copies %v, want one Healthy on each host", copies)
				}
			}
			return nil
		})
		if out, err := kubectl(t, bin, kc, "get", "components", "-o", "wide"); err != nil || !strings.Contains(out, "(leader)") || !strings.Contains(out, "kpha-cp2") {
			t.Errorf("kubectl get components -o wide names no leader or hosts: %v\n%s", err, out)
		}
		members, err := h.etcdMembers()
		if err != nil {
			t.Fatal(err)
		}
		leaders := 0
		for _, host := range hosts {
			m := members[host]
			if m == nil || m["health"] != "Healthy" || m["quorumSize"] != float64(2) || m["failureTolerance"] != float64(1) || m["voters"] != float64(3) {
				t.Errorf("etcd member %s: %v", host, m)
				continue
			}
			if m["leader"] == true {
				leaders++
			}
		}
		if leaders != 1 {
			t.Errorf("%d etcd leaders, want 1: %v", leaders, members)
		}
	})

	t.Run("controller-manager leader killed mid-rollout", func(t *testing.T) {
		// 200 replicas that no node takes (nothing matches the selector): the
		// ReplicaSet controller creates every pod, and must create each exactly once
		// across the change of leader.
		ns := "ha-rollout"
		if _, err := kubectl(t, bin, kc, "create", "namespace", ns); err != nil {
			t.Fatal(err)
		}
		deployment := filepath.Join(t.TempDir(), "web.yaml")
		if err := os.WriteFile(deployment, []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: `+ns+`}
spec:
  replicas: 200
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubeparts.dev/nowhere: "true"}
      containers: [{name: c, image: registry.k8s.io/pause:3.10}]
`), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := kubectl(t, bin, kc, "apply", "-f", deployment); err != nil {
			t.Fatal(err)
		}
		pods := func() int {
			list, err := h.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				return -1
			}
			return len(list.Items)
		}
		eventually(t, time.Minute, "the rollout under way", func() error {
			if n := pods(); n < 20 {
				return fmt.Errorf("%d pods", n)
			}
			return nil
		})
		t.Logf("%d of 200 pods when the leader is killed", pods())
		_, took := h.killLeaderAndTime(t, "kubeparts-controller-manager", "kubeparts-controller-manager")
		if took > leaseDuration+retryPeriod+3*time.Second {
			t.Errorf("failover took %s, want within the lease duration plus a retry period (%s)", took, leaseDuration+retryPeriod)
		}
		eventually(t, 3*time.Minute, "200 pods of the ReplicaSet", func() error {
			rs, err := h.client.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				return err
			}
			n := pods()
			for _, r := range rs.Items {
				if ptr.Deref(r.Spec.Replicas, 0) == 200 && r.Status.Replicas == 200 && n == 200 && r.Status.ObservedGeneration == r.Generation {
					return nil
				}
			}
			return fmt.Errorf("%d pods", n)
		})
		// Settled: no duplicate appears later either.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			if n := pods(); n != 200 {
				t.Fatalf("%d pods after the rollout settled, want exactly 200", n)
			}
			time.Sleep(time.Second)
		}
	})

	t.Run("scheduler leader killed with 500 pods pending", func(t *testing.T) {
		stop := h.fakeNode(t, "kpha-fake")
		defer stop()
		ns := "ha-sched"
		if _, err := kubectl(t, bin, kc, "create", "namespace", ns); err != nil {
			t.Fatal(err)
		}
		leader, frozenIdentity := h.holder("kube-scheduler")
		pids := hostPids(t, "kubeparts-scheduler", leader)
		if len(pids) != 1 {
			t.Fatalf("kubeparts-scheduler on %s: %v", leader, pids)
		}
		// Freeze the leader, then make 500 pods: they wait for the next leader.
		if err := syscall.Kill(pids[0], syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		created := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, 500)
		for w := 0; w < 10; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < 500; i += 10 {
					pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%03d", i)}, Spec: corev1.PodSpec{
						NodeSelector: map[string]string{"kubeparts.dev/fake": "true"},
						Containers:   []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}},
					}}
					if _, err := h.client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// kill -9 now: the frozen leader never renews again.
		if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Minute, "500 pods bound", func() error {
			list, err := h.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return err
			}
			bound := 0
			for _, p := range list.Items {
				if p.Spec.NodeName == "kpha-fake" {
					bound++
				}
			}
			if bound != 500 {
				return fmt.Errorf("%d of %d bound", bound, len(list.Items))
			}
			return nil
		})
		now, who := h.holder("kube-scheduler")
		t.Logf("kube-scheduler Lease: %s (frozen leader) -> %s; all 500 bound %s after they were created", frozenIdentity, who, time.Since(created).Round(100*time.Millisecond))
		if who == frozenIdentity || now == "" {
			t.Errorf("the Lease is held by %q, want another copy than the killed %s", who, frozenIdentity)
		}
		// Each pod bound once: one Scheduled event per pod.
		events, err := h.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=Scheduled"})
		if err != nil {
			t.Fatal(err)
		}
		per := map[string]int32{}
		for _, e := range events.Items {
			per[e.InvolvedObject.Name] += max(e.Count, 1)
		}
		for i := 0; i < 500; i++ {
			if name := fmt.Sprintf("p-%03d", i); per[name] != 1 {
				t.Errorf("pod %s: %d Scheduled events, want 1", name, per[name])
			}
		}
		if err := h.client.CoreV1().Nodes().Delete(context.Background(), "kpha-fake", metav1.DeleteOptions{}); err != nil {
			t.Error(err)
		}
		_, _ = kubectl(t, bin, kc, "delete", "namespace", ns, "ha-rollout", "--wait=false")
	})

	t.Run("a control-plane host lost under steady writes", func(t *testing.T) {
		ns := "ha-writes"
		w := startWriter(t, h, ns)
		lost := hosts[2]
		w.setPhase("during")
		signalHost(t, lost, syscall.SIGSTOP, hostBinaries...)
		frozen := time.Now()
		// kubectl through the load balancer keeps working once HAProxy has marked the
		// host down (two failed checks a second apart).
		eventually(t, 30*time.Second, "kubectl through the load balancer", func() error {
			_, err := kubectl(t, bin, kc, "get", "--raw", "/readyz")
			return err
		})
		w.waitAcked(t, "during", 50, time.Minute)
		eventually(t, time.Minute, "etcdmembers reporting the lost host's member", func() error {
			members, err := h.etcdMembers()
			if err != nil {
				return err
			}
			if m := members[lost]; m == nil || m["health"] == "Healthy" {
				return fmt.Errorf("etcd member %s of the lost host: %v", lost, m)
			}
			return nil
		})
		t.Logf("host %s frozen for %s", lost, time.Since(frozen).Round(time.Second))
		signalHost(t, lost, syscall.SIGCONT, hostBinaries...)
		w.setPhase("after")
		eventually(t, 2*time.Minute, "the host back: its etcd member healthy", func() error {
			members, err := h.etcdMembers()
			if err != nil {
				return err
			}
			if m := members[lost]; m == nil || m["health"] != "Healthy" {
				return fmt.Errorf("%v", m)
			}
			return nil
		})
		w.waitAcked(t, "after", 20, time.Minute)
		w.finish(t, h, ns)
		if n, failed := w.count("during"); failed > n/2 {
			t.Errorf("%d of %d writes failed while a host was lost", failed, n)
		}
	})

	t.Run("two of three etcd members lost and back", func(t *testing.T) {
		ns := "ha-quorum"
		w := startWriter(t, h, ns)
		w.setPhase("no quorum")
		signalHost(t, hosts[1], syscall.SIGSTOP, "etcd")
		signalHost(t, hosts[2], syscall.SIGSTOP, "etcd")
		eventually(t, 2*time.Minute, "writes failing with a clear error", func() error {
			_, err := kubectl(t, bin, kc, "-n", ns, "create", "configmap", "no-quorum", "--request-timeout=20s")
			if err == nil {
				return fmt.Errorf("a write succeeded")
			}
			t.Logf("write without quorum: %v", firstLine(err.Error()))
			return nil
		})
		eventually(t, time.Minute, "etcdmembers saying the quorum is lost", func() error {
			out, err := kubectl(t, bin, kc, "get", "etcdmembers", "-o", "jsonpath={range .items[*]}{.metadata.name} {.status.health} {.status.message}{\"\\n\"}{end}", "--request-timeout=30s")
			if err != nil {
				return err
			}
			if !strings.Contains(out, "quorum lost: 1 of 3 voting members answer, 2 needed") {
				return fmt.Errorf("etcdmembers:\n%s", out)
			}
			t.Logf("etcdmembers without quorum:\n%s", out)
			return nil
		})
		signalHost(t, hosts[1], syscall.SIGCONT, "etcd")
		signalHost(t, hosts[2], syscall.SIGCONT, "etcd")
		w.setPhase("after")
		w.waitAcked(t, "after", 20, 2*time.Minute)
		w.finish(t, h, ns)
	})

	t.Run("the whole up restarted brings the same cluster back", func(t *testing.T) {
		before, err := h.client.CoreV1().ConfigMaps("ha-writes").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if code := u.stop(t, syscall.SIGINT, 2*time.Minute); code != 0 {
			t.Fatalf("up exited %d:\n%s", code, u.output())
		}
		assertStoppedCleanly(t, u)
		if code, out := runUp(t, bin, "--bin-dir", bin, "--data-dir", data, "--port-base", "31443", "--node-name", "kpha", "--stock", "cloud-controller-manager"); code == 0 || !strings.Contains(out, "was made with --control-planes=3 --etcd=stacked --etcd-members=3") {
			t.Errorf("the default topology on an HA data dir: exit %d\n%s", code, out)
		}
		start := time.Now()
		u2 := startUp(t, bin, args...)
		kc2 := u2.waitReady(t, 6*time.Minute)
		t.Logf("restarted in %s", time.Since(start).Round(time.Second))
		h2 := newHACluster(t, bin, kc2, "kpha")
		after, err := h2.client.CoreV1().ConfigMaps("ha-writes").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(after.Items) != len(before.Items) {
			t.Errorf("%d ConfigMaps after the restart, %d before", len(after.Items), len(before.Items))
		}
		eventually(t, time.Minute, "3 etcd members after the restart", func() error {
			members, err := h2.etcdMembers()
			if err != nil || len(members) != 3 {
				return fmt.Errorf("%v %v", members, err)
			}
			return nil
		})
		if code := u2.stop(t, syscall.SIGINT, 2*time.Minute); code != 0 {
			t.Errorf("up exited %d", code)
		}
		assertNothingLeft(t, data)
	})
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// TestUpHAExternal runs two control-plane hosts on three etcd hosts of their own: losing
// a control-plane host leaves every etcd member alone, and losing an etcd member leaves
// every kube-apiserver ready.
func TestUpHAExternal(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	data := t.TempDir()
	start := time.Now()
	u := startUp(t, bin, "--bin-dir", bin, "--data-dir", data, "--port-base", "32443", "--node-name", "kpex",
		"--control-planes", "2", "--etcd", "external", "--etcd-members", "3")
	kc := u.waitReady(t, 6*time.Minute)
	t.Logf("2 control-plane hosts on 3 external etcd hosts ready in %s", time.Since(start).Round(time.Second))
	h := newHACluster(t, bin, kc, "kpex")
	members := []string{"kpex-etcd1", "kpex-etcd2", "kpex-etcd3"}
	allMembersHealthy := func() error {
		m, err := h.etcdMembers()
		if err != nil {
			return err
		}
		for _, name := range members {
			if m[name] == nil || m[name]["health"] != "Healthy" {
				return fmt.Errorf("member %s: %v", name, m[name])
			}
		}
		return nil
	}
	eventually(t, time.Minute, "3 healthy etcd members", allMembersHealthy)
	ips := map[string]string{"kpex-cp1": hostIP(t, h, "kpex-cp1"), "kpex-cp2": hostIP(t, h, "kpex-cp2")}
	for _, b := range []string{"kube-apiserver", "kube-controller-manager"} {
		if pids := hostPids(t, b, "kpex-etcd1"); len(pids) != 0 {
			t.Errorf("%s runs on the etcd host: %v", b, pids)
		}
	}
	if pids := hostPids(t, "etcd", "kpex-cp1"); len(pids) != 0 {
		t.Errorf("etcd runs on a control-plane host: %v", pids)
	}

	// A control-plane host lost: etcd is untouched, the other host serves.
	signalHost(t, "kpex-cp2", syscall.SIGSTOP, "kube-apiserver", "kube-controller-manager", "kubeparts-controller-manager", "kubeparts-scheduler", "kubeparts-apiserver")
	eventually(t, time.Minute, "writes through the load balancer with kpex-cp2 lost", func() error {
		_, err := kubectl(t, bin, kc, "create", "configmap", "cp2-lost", "--request-timeout=10s")
		if err != nil && strings.Contains(err.Error(), "AlreadyExists") {
			return nil // an earlier attempt went through after its client gave up
		}
		return err
	})
	// The view is served by kubeparts-apiserver through the aggregator, which may answer
	// 503 for a while after one of its copies was lost (its availability check).
	eventually(t, time.Minute, "every etcd member healthy with a control-plane host lost", allMembersHealthy)
	eventually(t, time.Minute, "kubeparts-apiserver's copy on kpex-cp2 reported not ready", func() error {
		view, err := h.componentsView()
		if err != nil {
			return err
		}
		if copies := instanceHealth(view["kubeparts-apiserver"]); copies["kpex-cp1"] != "Healthy" || copies["kpex-cp2"] != "Unhealthy" {
			return fmt.Errorf("kubeparts-apiserver copies %v", copies)
		}
		return nil
	})
	signalHost(t, "kpex-cp2", syscall.SIGCONT, "kube-apiserver", "kube-controller-manager", "kubeparts-controller-manager", "kubeparts-scheduler", "kubeparts-apiserver")

	// An etcd member lost: every kube-apiserver stays ready, writes succeed. A frozen
	// member keeps its connections open: requests the apiservers' etcd clients had sent
	// it wait until gRPC's keepalive gives up on it (tens of seconds), so the checks
	// below poll for the apiservers to serve again rather than expect no hiccup.
	signalHost(t, "kpex-etcd3", syscall.SIGSTOP, "etcd")
	lost := time.Now()
	eventually(t, time.Minute, "etcdmembers reporting kpex-etcd3 lost, quorum kept", func() error {
		m, err := h.etcdMembers()
		if err != nil {
			return err
		}
		if m["kpex-etcd3"] == nil || m["kpex-etcd3"]["health"] == "Healthy" || m["kpex-etcd1"]["health"] != "Healthy" {
			return fmt.Errorf("%v", m)
		}
		return nil
	})
	for _, cp := range []string{"kpex-cp1", "kpex-cp2"} {
		ip := ips[cp]
		eventually(t, 90*time.Second, "kube-apiserver on "+cp+" ready with an etcd member lost", func() error {
			ok, msg := readyz(fmt.Sprintf("https://%s:32443/readyz", ip))
			if !ok {
				return fmt.Errorf("%s", msg)
			}
			return nil
		})
	}
	eventually(t, 90*time.Second, "a write with one etcd member lost", func() error {
		_, err := kubectl(t, bin, kc, "create", "configmap", "etcd3-lost", "--request-timeout=20s")
		if err != nil && strings.Contains(err.Error(), "AlreadyExists") {
			return nil // an earlier attempt went through after its client gave up
		}
		return err
	})
	t.Logf("with kpex-etcd3 lost, both kube-apiservers ready and a write acknowledged within %s", time.Since(lost).Round(time.Second))
	signalHost(t, "kpex-etcd3", syscall.SIGCONT, "etcd")
	eventually(t, time.Minute, "kpex-etcd3 back", allMembersHealthy)
	if code := u.stop(t, syscall.SIGINT, 2*time.Minute); code != 0 {
		t.Errorf("up exited %d:\n%s", code, u.output())
	}
	assertNothingLeft(t, data)
}

// hostIP is a control-plane host's address: the kubernetes Service's endpoint that
// kube-apiserver on that host advertises (found through the components view's
// endpoints, which name host and address).
func hostIP(t *testing.T, h *haCluster, host string) string {
	t.Helper()
	view, err := h.componentsView()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range view["kube-controller-manager"]["instances"].([]any) {
		inst := i.(map[string]any)
		if inst["name"] == host {
			u, _, _ := strings.Cut(strings.TrimPrefix(inst["endpoint"].(string), "https://"), ":")
			return u
		}
	}
	t.Fatalf("no address for %s in the components view", host)
	return ""
}

// readyz asks a kube-apiserver's anonymous /readyz (a health probe: its certificate is
// not what is tested here).
func readyz(url string) (bool, string) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get(url)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK, resp.Status
}
