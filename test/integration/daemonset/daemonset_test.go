// Package daemonset tests kubeparts' daemonset-controller against a real kube-apiserver.
// No scheduler runs here: pods stay bound to their node only through the node affinity
// the controller sets, which is what the tests check; a fake kubelet makes pods ready.
package daemonset

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kubeparts/kubeparts/controllers/daemonset"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, "daemonset", &env, framework.WithManager(func(_ context.Context, mgr ctrl.Manager) error {
		r := &daemonset.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder(daemonset.Name)}
		return r.SetupWithManager(mgr, 2)
	})))
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	framework.Eventually(t, 45*time.Second, what, f)
}

// nodes creates ready nodes labelled with the test's pool, removed at the end. Admission
// (TaintNodesByCondition) gives a new node the not-ready:NoSchedule taint, which the node
// lifecycle controller removes once the node is Ready; the test does that here.
func nodes(t *testing.T, pool string, names ...string) {
	t.Helper()
	newNodes(t, pool, true, names...)
}

func newNodes(t *testing.T, pool string, ready bool, names ...string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range names {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"pool": pool}}}
		created, err := env.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ready && len(created.Spec.Taints) > 0 {
			created.Spec.Taints = nil
			if _, err := env.Client.CoreV1().Nodes().Update(ctx, created, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { _ = env.Client.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{}) })
	}
}

func setup(t *testing.T) string {
	t.Helper()
	ns, err := env.Namespace(context.Background(), "ds-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	framework.FakeKubelet(ctx, env.Client, ns, nil)
	return ns
}

func newDS(ns, name, pool string) *appsv1.DaemonSet {
	labels := map[string]string{"app": name}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"pool": pool},
					Containers:   []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10", Env: []corev1.EnvVar{{Name: "V", Value: "1"}}}},
				},
			},
		},
	}
}

func create(t *testing.T, ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	t.Helper()
	out, err := env.Client.AppsV1().DaemonSets(ds.Namespace).Create(context.Background(), ds, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// podNodes maps each live pod of the namespace to the node its affinity pins it to.
func podNodes(t *testing.T, ns string) map[string][]corev1.Pod {
	t.Helper()
	pods, err := env.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]corev1.Pod{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		node := ""
		if a := p.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
			for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
				for _, f := range term.MatchFields {
					if f.Key == "metadata.name" && len(f.Values) == 1 {
						node = f.Values[0]
					}
				}
			}
		}
		out[node] = append(out[node], p)
	}
	return out
}

func onNodes(t *testing.T, ns string, want ...string) func() error {
	slices.Sort(want)
	return func() error {
		var got []string
		for node, pods := range podNodes(t, ns) {
			if len(pods) != 1 {
				return fmt.Errorf("%d pods for node %q", len(pods), node)
			}
			got = append(got, node)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("pods for nodes %v, want %v", got, want)
		}
		return nil
	}
}

func status(t *testing.T, ds *appsv1.DaemonSet) appsv1.DaemonSetStatus {
	t.Helper()
	got, err := env.Client.AppsV1().DaemonSets(ds.Namespace).Get(context.Background(), ds.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got.Status
}

func TestOnePodPerEligibleNode(t *testing.T) {
	ctx := context.Background()
	ns := setup(t)
	nodes(t, "p1", "p1-a", "p1-b", "p1-c")
	ds := create(t, newDS(ns, "agent", "p1"))
	eventually(t, "a pod per node", onNodes(t, ns, "p1-a", "p1-b", "p1-c"))
	for _, pods := range podNodes(t, ns) {
		p := pods[0]
		for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable, corev1.TaintNodeUnschedulable, corev1.TaintNodeDiskPressure} {
			if !slices.ContainsFunc(p.Spec.Tolerations, func(tol corev1.Toleration) bool { return tol.Key == key && tol.TolerationSeconds == nil }) {
				t.Errorf("pod %s lacks the default toleration %s", p.Name, key)
			}
		}
		if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == "" {
			t.Errorf("pod %s lacks %s", p.Name, appsv1.DefaultDaemonSetUniqueLabelKey)
		}
	}
	eventually(t, "status", func() error {
		st := status(t, ds)
		if st.DesiredNumberScheduled != 3 || st.CurrentNumberScheduled != 3 || st.NumberReady != 3 || st.NumberAvailable != 3 || st.UpdatedNumberScheduled != 3 || st.NumberUnavailable != 0 || st.NumberMisscheduled != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})

	// A node tainted NoSchedule gets no new daemon; an existing one stays (only NoExecute
	// evicts). A new node gets one; an untolerated NoExecute taint removes it.
	taint := func(name string, t1 corev1.Taint) {
		n, err := env.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Spec.Taints = append(n.Spec.Taints, t1)
		if _, err := env.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	taint("p1-a", corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule})
	nodes(t, "p1", "p1-d")
	eventually(t, "new node gets a daemon", onNodes(t, ns, "p1-a", "p1-b", "p1-c", "p1-d"))
	newNodes(t, "p1", false, "p1-e") // keeps admission's not-ready:NoSchedule taint
	taint("p1-b", corev1.Taint{Key: "maintenance", Effect: corev1.TaintEffectNoExecute})
	eventually(t, "NoExecute removes, NoSchedule keeps", onNodes(t, ns, "p1-a", "p1-c", "p1-d"))
	if err := env.Client.CoreV1().Nodes().Delete(ctx, "p1-c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted node's daemon removed", onNodes(t, ns, "p1-a", "p1-d"))
}

func update(t *testing.T, ds *appsv1.DaemonSet, v string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"c","env":[{"name":"V","value":%q}]}]}}}}`, v)
	if _, err := env.Client.AppsV1().DaemonSets(ds.Namespace).Patch(context.Background(), ds.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func allAt(t *testing.T, ns, v string, n int) func() error {
	return func() error {
		count := 0
		for node, pods := range podNodes(t, ns) {
			if len(pods) != 1 || pods[0].Spec.Containers[0].Env[0].Value != v {
				return fmt.Errorf("node %s: %d pods, first at %s", node, len(pods), pods[0].Spec.Containers[0].Env[0].Value)
			}
			count++
		}
		if count != n {
			return fmt.Errorf("%d nodes at %s, want %d", count, v, n)
		}
		return nil
	}
}

// TestRollingUpdate samples each rollout: with maxUnavailable 1 at most one node lacks a
// pod; with maxSurge 1 (maxUnavailable 0) every node keeps one and at most one has two.
func TestRollingUpdate(t *testing.T) {
	for _, tc := range []struct {
		name                string
		surge, unavail      intstr.IntOrString
		minPerNode, maxBoth int
	}{
		{"maxUnavailable=1", intstr.FromInt32(0), intstr.FromInt32(1), 0, 0},
		{"maxSurge=1", intstr.FromInt32(1), intstr.FromInt32(0), 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := setup(t)
			pool := "roll-" + ns
			names := []string{pool + "-a", pool + "-b", pool + "-c"}
			nodes(t, pool, names...)
			spec := newDS(ns, "agent", pool)
			spec.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxSurge: &tc.surge, MaxUnavailable: &tc.unavail}}
			ds := create(t, spec)
			eventually(t, "v1 everywhere", allAt(t, ns, "1", 3))
			eventually(t, "v1 available", func() error {
				if st := status(t, ds); st.NumberAvailable != 3 {
					return fmt.Errorf("status %+v", st)
				}
				return nil
			})
			update(t, ds, "2")
			deadline := time.Now().Add(45 * time.Second)
			for allAt(t, ns, "2", 3)() != nil {
				if time.Now().After(deadline) {
					t.Fatalf("rollout not finished: %v", allAt(t, ns, "2", 3)())
				}
				byNode := podNodes(t, ns)
				missing, both := 0, 0
				for _, n := range names {
					switch len(byNode[n]) {
					case 0:
						missing++
					case 2:
						both++
					}
				}
				if tc.minPerNode == 1 && missing > 0 {
					t.Fatalf("a node without a daemon during a maxUnavailable=0 rollout")
				}
				if missing > 1 {
					t.Fatalf("%d nodes without a daemon, maxUnavailable is 1", missing)
				}
				if both > tc.maxBoth {
					t.Fatalf("%d nodes with two daemons, maxSurge is %d", both, tc.maxBoth)
				}
				time.Sleep(10 * time.Millisecond)
			}
			revs, err := env.Client.AppsV1().ControllerRevisions(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil || len(revs.Items) != 2 {
				t.Fatalf("ControllerRevisions: %v %v, want 2", len(revs.Items), err)
			}
		})
	}
}

// OnDelete replaces nothing by itself; a deleted pod comes back at the new template.
func TestOnDelete(t *testing.T) {
	ctx := context.Background()
	ns := setup(t)
	pool := "od-" + ns
	nodes(t, pool, pool+"-a", pool+"-b")
	spec := newDS(ns, "agent", pool)
	spec.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	ds := create(t, spec)
	eventually(t, "v1", allAt(t, ns, "1", 2))
	update(t, ds, "2")
	eventually(t, "new revision observed", func() error {
		if st := status(t, ds); st.ObservedGeneration != 2 || st.UpdatedNumberScheduled != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	if err := allAt(t, ns, "1", 2)(); err != nil {
		t.Fatalf("OnDelete replaced pods: %v", err)
	}
	victim := podNodes(t, ns)[pool+"-a"][0]
	if err := env.Client.CoreV1().Pods(ns).Delete(ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted pod replaced at v2", func() error {
		pods := podNodes(t, ns)[pool+"-a"]
		if len(pods) != 1 || pods[0].Spec.Containers[0].Env[0].Value != "2" {
			return fmt.Errorf("pods on a: %d", len(pods))
		}
		return nil
	})
}

// A failed daemon pod is deleted, and then replaced on its node.
func TestFailedPodReplaced(t *testing.T) {
	ctx := context.Background()
	ns := setup(t)
	pool := "fail-" + ns
	nodes(t, pool, pool+"-a")
	create(t, newDS(ns, "agent", pool))
	eventually(t, "a daemon", onNodes(t, ns, pool+"-a"))
	first := podNodes(t, ns)[pool+"-a"][0]
	eventually(t, "daemon ready", func() error {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, first.Name, metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %v %v", p.Status.Phase, err)
		}
		first = *p
		return nil
	})
	// Ready stays true so the fake kubelet leaves the failure alone.
	first.Status.Phase = corev1.PodFailed
	if _, err := env.Client.CoreV1().Pods(ns).UpdateStatus(ctx, &first, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "failed daemon replaced", func() error {
		pods := podNodes(t, ns)[pool+"-a"]
		if len(pods) != 1 || pods[0].Name == first.Name {
			return fmt.Errorf("%d pods, first %v", len(pods), pods)
		}
		return nil
	})
}
