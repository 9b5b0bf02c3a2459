// Package nodelifecycle tests kubeparts' node-lifecycle-controller and
// taint-eviction-controller together against a real kube-apiserver; the tests play the
// kubelets, renewing node Leases and writing node status.
package nodelifecycle

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kubeparts/kubeparts/controllers/nodelifecycle"
	"github.com/kubeparts/kubeparts/controllers/tainteviction"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

const grace = 2 * time.Second

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, "nodelifecycle", &env, framework.WithManager(func(ctx context.Context, mgr ctrl.Manager) error {
		opts := nodelifecycle.DefaultOptions()
		opts.MonitorPeriod, opts.GracePeriod, opts.StartupGracePeriod, opts.EvictionRate = 200*time.Millisecond, grace, 3*time.Second, 50
		nl := &nodelifecycle.Controller{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder(nodelifecycle.Name), Options: opts}
		if err := nl.SetupWithManager(ctx, mgr); err != nil {
			return err
		}
		te := &tainteviction.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder(tainteviction.Name)}
		return te.SetupWithManager(ctx, mgr, 4)
	})))
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	framework.Eventually(t, 30*time.Second, what, f)
}

// kubelet plays one node's kubelet: it registers the node and, while beating, renews the
// node's Lease and reports the Ready condition it is told to.
type kubelet struct {
	name   string
	cancel context.CancelFunc
}

func startKubelet(t *testing.T, name, zone string, ready corev1.ConditionStatus, extra ...corev1.NodeCondition) *kubelet {
	t.Helper()
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelTopologyZone: zone}}}
	if _, err := env.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	if _, err := env.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k := &kubelet{name: name}
	k.report(t, ready, extra...)
	k.beat()
	t.Cleanup(func() {
		k.stop()
		_ = env.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return k
}

// updateNode changes a Node the controller under test also writes, retrying
// on conflict.
func updateNode(t *testing.T, name string, mutate func(*corev1.Node)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := env.Client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(n)
		_, err = env.Client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (k *kubelet) report(t *testing.T, ready corev1.ConditionStatus, extra ...corev1.NodeCondition) {
	t.Helper()
	ctx := context.Background()
	// The controller under test writes the same Node (taints): retry on conflict
	// as a kubelet would.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := env.Client.CoreV1().Nodes().Get(ctx, k.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		node.Status.Conditions = append([]corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}}, extra...)
		_, err = env.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (k *kubelet) beat() {
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(300 * time.Millisecond):
			}
			if l, err := env.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, k.name, metav1.GetOptions{}); err == nil {
				l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
				_, _ = env.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, l, metav1.UpdateOptions{})
			}
		}
	}()
}

func (k *kubelet) stop() {
	if k.cancel != nil {
		k.cancel()
	}
}

func node(t *testing.T, name string) *corev1.Node {
	t.Helper()
	n, err := env.Client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func taintKeys(n *corev1.Node) []string {
	var out []string
	for _, t := range n.Spec.Taints {
		out = append(out, t.Key+":"+string(t.Effect))
	}
	slices.Sort(out)
	return out
}

func wantTaints(t *testing.T, name string, want ...string) func() error {
	slices.Sort(want)
	return func() error {
		if got := taintKeys(node(t, name)); !slices.Equal(got, want) {
			return fmt.Errorf("taints %v, want %v", got, want)
		}
		return nil
	}
}

func podOn(t *testing.T, ns, name, nodeName string, tolerations ...corev1.Toleration) {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{NodeName: nodeName, Tolerations: tolerations, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}}}
	p, err := env.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if _, err := env.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// evicted reports whether the taint manager has deleted the pod (graceful deletion
// leaves it terminating: no kubelet finishes it here).
func evicted(t *testing.T, ns, name string) bool {
	t.Helper()
	p, err := env.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return p.DeletionTimestamp != nil
}

const (
	unreachableNS = corev1.TaintNodeUnreachable + ":NoSchedule"
	unreachableNE = corev1.TaintNodeUnreachable + ":NoExecute"
	notReadyNS    = corev1.TaintNodeNotReady + ":NoSchedule"
	notReadyNE    = corev1.TaintNodeNotReady + ":NoExecute"
)

func TestHeartbeatLossEvictionAndRecovery(t *testing.T) {
	ctx := context.Background()
	startKubelet(t, "healthy-a", "zone-a", corev1.ConditionTrue)
	silent := startKubelet(t, "silent-a", "zone-a", corev1.ConditionTrue)
	ns, err := env.Namespace(ctx, "evict-")
	if err != nil {
		t.Fatal(err)
	}
	toleration := func(secs *int64) corev1.Toleration {
		return corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: secs}
	}
	// Admission gives every pod 300s tolerations for not-ready and unreachable; a pod
	// that brings its own with 0 seconds goes at once.
	podOn(t, ns, "intolerant", "silent-a", toleration(ptr.To[int64](0)))
	podOn(t, ns, "patient", "silent-a", toleration(ptr.To[int64](3)))
	podOn(t, ns, "loyal", "silent-a", toleration(nil))
	podOn(t, ns, "elsewhere", "healthy-a")
	eventually(t, "healthy node untainted", wantTaints(t, "silent-a"))

	silent.stop()
	eventually(t, "Ready=Unknown after the grace period", func() error {
		c := readyCondition(node(t, "silent-a"))
		if c == nil || c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusUnknown" {
			return fmt.Errorf("Ready %+v", c)
		}
		return nil
	})
	eventually(t, "unreachable taints", wantTaints(t, "silent-a", unreachableNS, unreachableNE))
	eventually(t, "pods marked not ready", func() error {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "loyal", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", p.Status.Conditions)
	})
	eventually(t, "intolerant pod evicted at once", func() error {
		if !evicted(t, ns, "intolerant") {
			return fmt.Errorf("still there")
		}
		return nil
	})
	var added time.Time
	for _, taint := range node(t, "silent-a").Spec.Taints {
		if taint.Key == corev1.TaintNodeUnreachable && taint.Effect == corev1.TaintEffectNoExecute {
			added = taint.TimeAdded.Time
		}
	}
	eventually(t, "patient pod evicted after its tolerationSeconds", func() error {
		if !evicted(t, ns, "patient") {
			return fmt.Errorf("still there")
		}
		return nil
	})
	if early := time.Until(added.Add(3 * time.Second)); early > time.Second {
		t.Fatalf("patient pod evicted %v before its 3s toleration ran out", early)
	}
	p, _ := env.Client.CoreV1().Pods(ns).Get(ctx, "patient", metav1.GetOptions{})
	if p != nil && !slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.DisruptionTarget && c.Reason == "DeletionByTaintManager"
	}) {
		t.Errorf("evicted pod lacks the DisruptionTarget condition: %+v", p.Status.Conditions)
	}
	if evicted(t, ns, "loyal") || evicted(t, ns, "elsewhere") {
		t.Fatal("a pod tolerating for ever, or one on a healthy node, was evicted")
	}

	// An operator's NoExecute taint (no default toleration for it) evicts at once.
	updateNode(t, "healthy-a", func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "example.com/drain", Effect: corev1.TaintEffectNoExecute})
	})
	eventually(t, "pod on the drained node evicted", func() error {
		if !evicted(t, ns, "elsewhere") {
			return fmt.Errorf("still there")
		}
		return nil
	})

	// The node comes back: every taint goes.
	silent.report(t, corev1.ConditionTrue)
	silent.beat()
	eventually(t, "taints removed on recovery", wantTaints(t, "silent-a"))
}

func TestConditionTaints(t *testing.T) {
	startKubelet(t, "keeper-b", "zone-b", corev1.ConditionTrue)
	startKubelet(t, "notready-b", "zone-b", corev1.ConditionFalse)
	eventually(t, "not-ready taints", wantTaints(t, "notready-b", notReadyNS, notReadyNE))

	pressured := startKubelet(t, "pressure-b", "zone-b", corev1.ConditionTrue,
		corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue},
		corev1.NodeCondition{Type: corev1.NodeDiskPressure, Status: corev1.ConditionTrue})
	eventually(t, "pressure taints", wantTaints(t, "pressure-b", corev1.TaintNodeMemoryPressure+":NoSchedule", corev1.TaintNodeDiskPressure+":NoSchedule"))
	pressured.report(t, corev1.ConditionTrue)
	eventually(t, "pressure taints gone with the pressure", wantTaints(t, "pressure-b"))

	// Operator taints are left alone; cordoning adds unschedulable.
	updateNode(t, "pressure-b", func(n *corev1.Node) {
		n.Spec.Unschedulable = true
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule})
	})
	eventually(t, "cordon taint added, operator taint kept", wantTaints(t, "pressure-b", "dedicated:NoSchedule", corev1.TaintNodeUnschedulable+":NoSchedule"))
}

// A taint removed before a pod's toleration runs out cancels its eviction, and says so.
func TestEvictionCancelled(t *testing.T) {
	ctx := context.Background()
	startKubelet(t, "steady-e", "zone-e", corev1.ConditionTrue)
	ns, err := env.Namespace(ctx, "cancel-")
	if err != nil {
		t.Fatal(err)
	}
	podOn(t, ns, "waiting", "steady-e", corev1.Toleration{Key: "example.com/maintenance", Operator: corev1.TolerationOpExists,
		Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](30)})
	setTaints := func(taints []corev1.Taint) {
		updateNode(t, "steady-e", func(n *corev1.Node) { n.Spec.Taints = taints })
	}
	now := metav1.Now()
	setTaints([]corev1.Taint{{Key: "example.com/maintenance", Effect: corev1.TaintEffectNoExecute, TimeAdded: &now}})
	eventually(t, "eviction scheduled", func() error {
		if n := gauge(t, "kubeparts_taint_eviction_pending_pods"); n < 1 {
			return fmt.Errorf("kubeparts_taint_eviction_pending_pods = %v", n)
		}
		return nil
	})
	setTaints(nil)
	eventually(t, "cancellation event", func() error {
		evs, err := env.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "TaintManagerEviction" && strings.HasPrefix(e.Note, "Cancelling deletion of Pod") {
				return nil
			}
		}
		return fmt.Errorf("%d events, none cancelling", len(evs.Items))
	})
	if evicted(t, ns, "waiting") {
		t.Fatal("pod evicted although the taint was lifted within its toleration")
	}
}

// When every node of every zone goes silent the control plane is the likelier culprit:
// no NoExecute taint, so nothing is evicted.
func TestFullDisruptionStopsEvictions(t *testing.T) {
	ctx := context.Background()
	if err := env.Client.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	a := startKubelet(t, "lonely-c", "zone-c", corev1.ConditionTrue)
	b := startKubelet(t, "lonely-d", "zone-d", corev1.ConditionTrue)
	a.stop()
	b.stop()
	eventually(t, "NoSchedule only", func() error {
		for _, name := range []string{"lonely-c", "lonely-d"} {
			if err := wantTaints(t, name, unreachableNS)(); err != nil {
				return fmt.Errorf("%s: %v", name, err)
			}
		}
		return nil
	})
	// Stays so over several monitor passes.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if err := wantTaints(t, "lonely-c", unreachableNS)(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readyCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// gauge reads a gauge from controller-runtime's registry, where the controllers under
// test (in this process) publish their metrics.
func gauge(t *testing.T, name string) float64 {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}
