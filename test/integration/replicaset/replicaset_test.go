// Package replicaset tests kubeparts' replicaset-controller against a real kube-apiserver
// (no kubelet, no garbage collector): the tests stand in for the kubelet by writing pod
// status.
package replicaset

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kubeparts/kubeparts/controllers/replicaset"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, "replicaset", &env, framework.WithManager(func(_ context.Context, mgr ctrl.Manager) error {
		r := &replicaset.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder(replicaset.Name)}
		return r.SetupWithManager(mgr, 5)
	})))
}

const wait = 30 * time.Second

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	framework.Eventually(t, wait, what, f)
}

func namespace(t *testing.T) string {
	t.Helper()
	ns, err := env.Namespace(context.Background(), "rs-")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func newRS(ns, name string, replicas int32) *appsv1.ReplicaSet {
	labels := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
}

func createRS(t *testing.T, rs *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	t.Helper()
	out, err := env.Client.AppsV1().ReplicaSets(rs.Namespace).Create(context.Background(), rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ownedPods lists the active pods whose ControllerRef is rs.
func ownedPods(t *testing.T, rs *appsv1.ReplicaSet) []corev1.Pod {
	t.Helper()
	list, err := env.Client.CoreV1().Pods(rs.Namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == rs.UID && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func podCount(t *testing.T, rs *appsv1.ReplicaSet, want int) func() error {
	return func() error {
		if got := len(ownedPods(t, rs)); got != want {
			return fmt.Errorf("%d owned pods, want %d", got, want)
		}
		return nil
	}
}

func scale(t *testing.T, rs *appsv1.ReplicaSet, replicas int32) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	if _, err := env.Client.AppsV1().ReplicaSets(rs.Namespace).Patch(context.Background(), rs.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func getRS(t *testing.T, rs *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	t.Helper()
	got, err := env.Client.AppsV1().ReplicaSets(rs.Namespace).Get(context.Background(), rs.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// markReady does what the kubelet would: the pod runs and is Ready.
func markReady(t *testing.T, p *corev1.Pod) {
	t.Helper()
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if _, err := env.Client.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestScaleUpAndDown(t *testing.T) {
	rs := createRS(t, newRS(namespace(t), "web", 5))
	eventually(t, "5 pods", podCount(t, rs, 5))
	for _, p := range ownedPods(t, rs) {
		ref := metav1.GetControllerOf(&p)
		if ref.Kind != "ReplicaSet" || ref.APIVersion != "apps/v1" || !ptr.Deref(ref.BlockOwnerDeletion, false) || !strings.HasPrefix(p.Name, "web-") {
			t.Errorf("pod %s: ControllerRef %+v, want a blocking apps/v1 ReplicaSet ref and a name from the ReplicaSet's", p.Name, ref)
		}
	}
	eventually(t, "status", func() error {
		got := getRS(t, rs)
		if got.Status.Replicas != 5 || got.Status.FullyLabeledReplicas != 5 || got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
	scale(t, rs, 2)
	eventually(t, "2 pods after scale down", podCount(t, rs, 2))
	scale(t, rs, 0)
	eventually(t, "0 pods", podCount(t, rs, 0))
	eventually(t, "status at 0", func() error {
		if got := getRS(t, rs); got.Status.Replicas != 0 {
			return fmt.Errorf("status.replicas %d", got.Status.Replicas)
		}
		return nil
	})
}

// Scale-down removes the pods with the lowest controller.kubernetes.io/pod-deletion-cost.
// The pods start as annotated orphans the ReplicaSet adopts, so the controller's cache
// has the annotations before the scale-down.
func TestScaleDownHonoursDeletionCost(t *testing.T) {
	ns := namespace(t)
	spec := newRS(ns, "cost", 4)
	costs := map[string]string{"p-100": "100", "p-minus50": "-50", "p-7": "7", "p-1000": "1000"}
	for name, cost := range costs {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: spec.Spec.Template.Labels,
			Annotations: map[string]string{replicaset.PodDeletionCostAnnotation: cost}}, Spec: spec.Spec.Template.Spec}
		if _, err := env.Client.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rs := createRS(t, spec)
	eventually(t, "4 adopted pods", podCount(t, rs, 4))
	scale(t, rs, 2)
	eventually(t, "the two most expensive pods kept", func() error {
		var left []string
		for _, p := range ownedPods(t, rs) {
			left = append(left, p.Name)
		}
		sort.Strings(left)
		if strings.Join(left, ",") != "p-100,p-1000" {
			return fmt.Errorf("left %v", left)
		}
		return nil
	})
}

// An orphan that matches is adopted and counts; an owned pod whose labels stop matching is
// released and replaced; a pod another controller owns is left alone.
func TestAdoptionAndRelease(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	template := newRS(ns, "adopt", 3).Spec.Template
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: ns, Labels: map[string]string{"app": "adopt"}}, Spec: template.Spec}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "foreign", Namespace: ns, Labels: map[string]string{"app": "adopt"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "someone-else", UID: "11111111-2222-3333-4444-555555555555", Controller: ptr.To(true)}}},
		Spec: template.Spec}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs := createRS(t, newRS(ns, "adopt", 3))
	eventually(t, "3 owned pods including the orphan", func() error {
		pods := ownedPods(t, rs)
		hasOrphan := false
		for _, p := range pods {
			hasOrphan = hasOrphan || p.Name == "orphan"
		}
		if len(pods) != 3 || !hasOrphan {
			return fmt.Errorf("%d owned, orphan adopted %v", len(pods), hasOrphan)
		}
		return nil
	})
	got, err := env.Client.CoreV1().Pods(ns).Get(ctx, "foreign", metav1.GetOptions{})
	if err != nil || metav1.GetControllerOf(got).Name != "someone-else" {
		t.Fatalf("foreign pod taken over: %v %+v", err, got.OwnerReferences)
	}
	// Relabel the adopted orphan out of the selector: released, then replaced.
	if _, err := env.Client.CoreV1().Pods(ns).Patch(ctx, "orphan", types.MergePatchType, []byte(`{"metadata":{"labels":{"app":"elsewhere"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "released", func() error {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "orphan", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(p.OwnerReferences) != 0 {
			return fmt.Errorf("still owned: %+v", p.OwnerReferences)
		}
		return nil
	})
	eventually(t, "replaced", podCount(t, rs, 3))
}

// A ReplicaSet being deleted (orphan propagation keeps it with a finalizer) adopts nothing.
func TestNoAdoptionWhileOwnerIsDeleted(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	rs := createRS(t, newRS(ns, "going", 1))
	eventually(t, "1 pod", podCount(t, rs, 1))
	if _, err := env.Client.AppsV1().ReplicaSets(ns).Patch(ctx, rs.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":["kubeparts.dev/test"]}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.AppsV1().ReplicaSets(ns).Delete(ctx, rs.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.Client.AppsV1().ReplicaSets(ns).Patch(ctx, rs.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "late-orphan", Namespace: ns, Labels: map[string]string{"app": "going"}}, Spec: rs.Spec.Template.Spec}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Give the controller time to (wrongly) act, then check nothing happened. The scaled
	// pod count doubles as the sign that the controller has processed this namespace.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "late-orphan", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.OwnerReferences) != 0 {
			t.Fatalf("a ReplicaSet being deleted adopted %s", p.Name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestReadyAndAvailableWithMinReadySeconds(t *testing.T) {
	spec := newRS(namespace(t), "ready", 2)
	spec.Spec.MinReadySeconds = 2
	rs := createRS(t, spec)
	eventually(t, "2 pods", podCount(t, rs, 2))
	for _, p := range ownedPods(t, rs) {
		markReady(t, &p)
	}
	eventually(t, "ready but not yet available", func() error {
		st := getRS(t, rs).Status
		if st.ReadyReplicas != 2 {
			return fmt.Errorf("ready %d", st.ReadyReplicas)
		}
		if st.AvailableReplicas != 0 {
			return fmt.Errorf("available %d before minReadySeconds", st.AvailableReplicas)
		}
		return nil
	})
	eventually(t, "available after minReadySeconds", func() error {
		if st := getRS(t, rs).Status; st.AvailableReplicas != 2 {
			return fmt.Errorf("available %d", st.AvailableReplicas)
		}
		return nil
	})
}

// A quota that admits two pods makes the rest fail: ReplicaFailure/FailedCreate and a
// FailedCreate event; raising the quota finishes the job and clears the condition.
func TestReplicaFailureFromQuota(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "pods", Namespace: ns}, Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2")}}}
	quota, err := env.Client.CoreV1().ResourceQuotas(ns).Create(ctx, quota, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No quota controller runs here: publish the status it would.
	quota.Status = corev1.ResourceQuotaStatus{Hard: quota.Spec.Hard, Used: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}
	if _, err = env.Client.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, quota, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs := createRS(t, newRS(ns, "quota", 4))
	eventually(t, "ReplicaFailure FailedCreate", func() error {
		for _, c := range getRS(t, rs).Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure && c.Reason == "FailedCreate" && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("no ReplicaFailure condition")
	})
	if n := len(ownedPods(t, rs)); n != 2 {
		t.Fatalf("%d pods past a quota of 2", n)
	}
	eventually(t, "FailedCreate event", func() error {
		evs, err := env.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedCreate" && e.Regarding.Name == rs.Name {
				return nil
			}
		}
		return fmt.Errorf("no FailedCreate event among %d", len(evs.Items))
	})
	quota, _ = env.Client.CoreV1().ResourceQuotas(ns).Get(ctx, "pods", metav1.GetOptions{})
	quota.Spec.Hard[corev1.ResourcePods] = resource.MustParse("10")
	if quota, err = env.Client.CoreV1().ResourceQuotas(ns).Update(ctx, quota, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	quota.Status.Hard = quota.Spec.Hard
	if _, err := env.Client.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, quota, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
		t.Fatal(err)
	}
	eventually(t, "4 pods once the quota allows", podCount(t, rs, 4))
	eventually(t, "ReplicaFailure cleared", func() error {
		if conds := getRS(t, rs).Status.Conditions; len(conds) != 0 {
			return fmt.Errorf("conditions %+v", conds)
		}
		return nil
	})
}
