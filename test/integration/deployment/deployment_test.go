// Package deployment tests kubeparts' deployment-controller, with kubeparts'
// replicaset-controller underneath, against a real kube-apiserver. A fake kubelet marks
// pods ready; each rollout is sampled while it runs to check the stock invariants.
package deployment

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kubeparts/kubeparts/controllers/deployment"
	"github.com/kubeparts/kubeparts/controllers/replicaset"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, "deployment", &env, framework.WithManager(func(_ context.Context, mgr ctrl.Manager) error {
		rs := &replicaset.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder(replicaset.Name)}
		if err := rs.SetupWithManager(mgr, 5); err != nil {
			return err
		}
		d := &deployment.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder(deployment.Name)}
		return d.SetupWithManager(mgr, 5)
	})))
}

const wait = 60 * time.Second

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	framework.Eventually(t, wait, what, f)
}

// setup makes a namespace whose pods a fake kubelet makes ready when ready() says so.
func setup(t *testing.T, ready func(*corev1.Pod) bool) string {
	t.Helper()
	ns, err := env.Namespace(context.Background(), "deploy-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	framework.FakeKubelet(ctx, env.Client, ns, ready)
	return ns
}

func newDeployment(ns, name string, replicas int32) *appsv1.Deployment {
	d := framework.Deployment(ns, name, replicas)
	d.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "VERSION", Value: "1"}}
	return d
}

func create(t *testing.T, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	out, err := env.Client.AppsV1().Deployments(d.Namespace).Create(context.Background(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func get(t *testing.T, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	out, err := env.Client.AppsV1().Deployments(d.Namespace).Get(context.Background(), d.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func patch(t *testing.T, d *appsv1.Deployment, p string) {
	t.Helper()
	if _, err := env.Client.AppsV1().Deployments(d.Namespace).Patch(context.Background(), d.Name, types.StrategicMergePatchType, []byte(p), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func setVersion(t *testing.T, d *appsv1.Deployment, v string) {
	t.Helper()
	patch(t, d, fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"c","env":[{"name":"VERSION","value":%q}]}]}}}}`, v))
}

// rolledOut is what `kubectl rollout status` waits for.
func rolledOut(t *testing.T, d *appsv1.Deployment) func() error {
	return func() error {
		cur := get(t, d)
		want := ptr.Deref(cur.Spec.Replicas, 1)
		st := cur.Status
		if st.ObservedGeneration < cur.Generation || st.UpdatedReplicas != want || st.Replicas != want || st.AvailableReplicas != want {
			return fmt.Errorf("generation %d observed %d, status %+v", cur.Generation, st.ObservedGeneration, st)
		}
		for _, c := range st.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Reason == deployment.ReasonNewRSAvailable {
				return nil
			}
		}
		return fmt.Errorf("no NewReplicaSetAvailable condition: %+v", st.Conditions)
	}
}

func replicaSets(t *testing.T, d *appsv1.Deployment) []appsv1.ReplicaSet {
	t.Helper()
	list, err := env.Client.AppsV1().ReplicaSets(d.Namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []appsv1.ReplicaSet
	for _, rs := range list.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.UID == d.UID {
			out = append(out, rs)
		}
	}
	return out
}

// TestRollingUpdateInvariants rolls a new template out under several surge/unavailable
// settings and samples the ReplicaSets throughout: their sizes never add up to more than
// replicas+maxSurge, their available pods never fall below replicas-maxUnavailable.
func TestRollingUpdateInvariants(t *testing.T) {
	for _, tc := range []struct {
		replicas           int32
		surge, unavail     string
		maxTotal, minAvail int32
	}{
		{5, "1", "0", 6, 5},
		{5, "0", "1", 5, 4},
		{6, "50%", "50%", 9, 3},
		{4, "100%", "0", 8, 4},
		{3, "25%", "25%", 4, 3}, // surge 0.75 rounds up to 1, unavailable down to 0
	} {
		t.Run(fmt.Sprintf("replicas=%d surge=%s unavailable=%s", tc.replicas, tc.surge, tc.unavail), func(t *testing.T) {
			ns := setup(t, nil)
			spec := newDeployment(ns, "roll", tc.replicas)
			s, u := intstr.Parse(tc.surge), intstr.Parse(tc.unavail)
			spec.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}}
			d := create(t, spec)
			eventually(t, "first rollout", rolledOut(t, d))
			setVersion(t, d, "2")
			deadline := time.Now().Add(wait)
			samples := 0
			for rolledOut(t, d)() != nil {
				if time.Now().After(deadline) {
					t.Fatalf("rollout not finished: %+v", get(t, d).Status)
				}
				var total, available int32
				for _, rs := range replicaSets(t, d) {
					total += ptr.Deref(rs.Spec.Replicas, 0)
					available += rs.Status.AvailableReplicas
				}
				if total > tc.maxTotal {
					t.Fatalf("ReplicaSets sized %d in all, more than replicas+maxSurge = %d", total, tc.maxTotal)
				}
				if available < tc.minAvail {
					t.Fatalf("%d available, fewer than replicas-maxUnavailable = %d", available, tc.minAvail)
				}
				samples++
				time.Sleep(10 * time.Millisecond)
			}
			rss := replicaSets(t, d)
			if len(rss) != 2 {
				t.Fatalf("%d ReplicaSets after one update, want 2", len(rss))
			}
			if got := get(t, d).Annotations[deployment.RevisionAnnotation]; got != "2" {
				t.Fatalf("revision %q after one update, want 2", got)
			}
			t.Logf("%d samples during the rollout", samples)
		})
	}
}

// Recreate never runs old and new pods at once.
func TestRecreateNeverOverlaps(t *testing.T) {
	ns := setup(t, nil)
	spec := newDeployment(ns, "recreate", 3)
	spec.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	d := create(t, spec)
	eventually(t, "first rollout", rolledOut(t, d))
	setVersion(t, d, "2")
	deadline := time.Now().Add(wait)
	for rolledOut(t, d)() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("rollout not finished: %+v", get(t, d).Status)
		}
		pods, err := env.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		versions := map[string]bool{}
		for _, p := range pods.Items {
			versions[p.Spec.Containers[0].Env[0].Value] = true
		}
		if versions["1"] && versions["2"] {
			t.Fatal("old and new pods exist at the same time under Recreate")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A rollback (what `kubectl rollout undo` sends: the old template) reuses the old
// ReplicaSet, gives it the next revision and records the previous one.
func TestRollbackReusesReplicaSet(t *testing.T) {
	ns := setup(t, nil)
	d := create(t, newDeployment(ns, "undo", 2))
	eventually(t, "v1", rolledOut(t, d))
	first := replicaSets(t, d)[0].Name
	setVersion(t, d, "2")
	eventually(t, "v2", rolledOut(t, d))
	setVersion(t, d, "1")
	eventually(t, "back to v1", rolledOut(t, d))
	rss := replicaSets(t, d)
	if len(rss) != 2 {
		t.Fatalf("%d ReplicaSets, want the 2 of v1 and v2", len(rss))
	}
	for _, rs := range rss {
		if rs.Name != first {
			continue
		}
		if rs.Annotations[deployment.RevisionAnnotation] != "3" || rs.Annotations[deployment.RevisionHistoryAnnotation] != "1" || ptr.Deref(rs.Spec.Replicas, 0) != 2 {
			t.Fatalf("reused ReplicaSet: replicas %d annotations %v", ptr.Deref(rs.Spec.Replicas, 0), rs.Annotations)
		}
		if get(t, d).Annotations[deployment.RevisionAnnotation] != "3" {
			t.Fatal("deployment revision not 3")
		}
		return
	}
	t.Fatalf("rollback created a new ReplicaSet instead of reusing %s", first)
}

// Paused: template changes wait, scaling does not; resuming rolls out.
func TestPauseAndResume(t *testing.T) {
	ns := setup(t, nil)
	d := create(t, newDeployment(ns, "paused", 2))
	eventually(t, "v1", rolledOut(t, d))
	patch(t, d, `{"spec":{"paused":true}}`)
	setVersion(t, d, "2")
	patch(t, d, `{"spec":{"replicas":4}}`)
	eventually(t, "scaled while paused, condition DeploymentPaused", func() error {
		cur := get(t, d)
		if cur.Status.ObservedGeneration < cur.Generation || cur.Status.Replicas != 4 {
			return fmt.Errorf("status %+v", cur.Status)
		}
		for _, c := range cur.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Reason == deployment.ReasonPaused && c.Status == corev1.ConditionUnknown {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", cur.Status.Conditions)
	})
	if n := len(replicaSets(t, d)); n != 1 {
		t.Fatalf("%d ReplicaSets while paused: the template change rolled out", n)
	}
	patch(t, d, `{"spec":{"paused":false}}`)
	eventually(t, "v2 after resume", rolledOut(t, d))
	if n := len(replicaSets(t, d)); n != 2 {
		t.Fatalf("%d ReplicaSets after resume, want 2", n)
	}
}

// A foreign ReplicaSet holding the new ReplicaSet's name makes the controller bump
// collisionCount and use another name.
func TestHashCollision(t *testing.T) {
	ns := setup(t, nil)
	spec := newDeployment(ns, "clash", 2)
	// Created paused, no ReplicaSet is made yet; the squatter is named after the template
	// as the apiserver defaulted it.
	spec.Spec.Paused = true
	d := create(t, spec)
	squatter := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clash-" + deployment.TemplateHash(&d.Spec.Template, nil)},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "other"}}, Spec: spec.Spec.Template.Spec},
		},
	}
	if _, err := env.Client.AppsV1().ReplicaSets(ns).Create(context.Background(), squatter, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	patch(t, d, `{"spec":{"paused":false}}`)
	eventually(t, "rolled out despite the collision", rolledOut(t, d))
	cur := get(t, d)
	if ptr.Deref(cur.Status.CollisionCount, 0) != 1 {
		t.Fatalf("collisionCount %v, want 1", cur.Status.CollisionCount)
	}
	want := "clash-" + deployment.TemplateHash(&d.Spec.Template, ptr.To[int32](1))
	if rss := replicaSets(t, d); len(rss) != 1 || rss[0].Name != want {
		t.Fatalf("%d ReplicaSets (first %s), want one named %s", len(rss), rss[0].Name, want)
	}
}

// revisionHistoryLimit keeps that many old ReplicaSets.
func TestRevisionHistoryLimit(t *testing.T) {
	ns := setup(t, nil)
	spec := newDeployment(ns, "history", 1)
	spec.Spec.RevisionHistoryLimit = ptr.To[int32](1)
	d := create(t, spec)
	for _, v := range []string{"2", "3", "4"} {
		eventually(t, "rollout", rolledOut(t, d))
		setVersion(t, d, v)
	}
	eventually(t, "v4", rolledOut(t, d))
	eventually(t, "old ReplicaSets cleaned up", func() error {
		var names []string
		for _, rs := range replicaSets(t, d) {
			names = append(names, rs.Name+"@"+rs.Annotations[deployment.RevisionAnnotation])
		}
		if len(names) != 2 {
			return fmt.Errorf("ReplicaSets %v, want the current and 1 old", names)
		}
		if !strings.Contains(strings.Join(names, " "), "@3") {
			return fmt.Errorf("kept %v, want revision 3 as the old one", names)
		}
		return nil
	})
}

// New pods that never become ready exceed progressDeadlineSeconds: Progressing=False,
// ProgressDeadlineExceeded, which `kubectl rollout status` reports as a failure.
func TestProgressDeadlineExceeded(t *testing.T) {
	ns := setup(t, func(p *corev1.Pod) bool { return p.Spec.Containers[0].Env[0].Value == "1" })
	spec := newDeployment(ns, "stuck", 2)
	spec.Spec.ProgressDeadlineSeconds = ptr.To[int32](2)
	d := create(t, spec)
	eventually(t, "v1", rolledOut(t, d))
	setVersion(t, d, "broken")
	eventually(t, "ProgressDeadlineExceeded", func() error {
		for _, c := range get(t, d).Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == deployment.ReasonTimedOut {
				if !strings.Contains(c.Message, "has timed out progressing") {
					return fmt.Errorf("message %q", c.Message)
				}
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", get(t, d).Status.Conditions)
	})
}

// Proportional scaling mid-rollout: both ReplicaSets grow, in proportion.
func TestScaleDuringRollout(t *testing.T) {
	ns := setup(t, func(p *corev1.Pod) bool { return p.Spec.Containers[0].Env[0].Value == "1" })
	spec := newDeployment(ns, "prop", 10)
	s, u := intstr.FromInt32(3), intstr.FromInt32(2)
	spec.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}
	d := create(t, spec)
	eventually(t, "v1", rolledOut(t, d))
	setVersion(t, d, "2") // never ready: the rollout stays at old 8 + new 5
	eventually(t, "stuck at 8+5", func() error {
		sizes := map[string]int32{}
		for _, rs := range replicaSets(t, d) {
			sizes[rs.Spec.Template.Spec.Containers[0].Env[0].Value] = ptr.Deref(rs.Spec.Replicas, 0)
		}
		if sizes["1"] != 8 || sizes["2"] != 5 {
			return fmt.Errorf("sizes %v", sizes)
		}
		return nil
	})
	patch(t, d, `{"spec":{"replicas":15}}`)
	eventually(t, "proportionally scaled to 11+7", func() error {
		sizes := map[string]int32{}
		for _, rs := range replicaSets(t, d) {
			sizes[rs.Spec.Template.Spec.Containers[0].Env[0].Value] = ptr.Deref(rs.Spec.Replicas, 0)
		}
		if sizes["1"] != 11 || sizes["2"] != 7 {
			return fmt.Errorf("sizes %v", sizes)
		}
		return nil
	})
}

// Bad input: what the apiserver refuses says why; what it accepts (the largest replica
// count) must not overflow the controller's arithmetic or make it crash.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	ns := setup(t, func(*corev1.Pod) bool { return false })
	mismatch := newDeployment(ns, "mismatch", 1)
	mismatch.Spec.Template.Labels = map[string]string{"app": "other"}
	negative := newDeployment(ns, "negative", -1)
	for _, tc := range []struct {
		d    *appsv1.Deployment
		want string
	}{
		{mismatch, "`selector` does not match template `labels`"},
		{negative, "must be greater than or equal to 0"},
	} {
		_, err := env.Client.AppsV1().Deployments(ns).Create(ctx, tc.d, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want Invalid mentioning %q", tc.d.Name, err, tc.want)
		}
	}

	huge := create(t, newDeployment(ns, "huge", math.MaxInt32))
	eventually(t, "ReplicaSet sized without overflow, pods being created", func() error {
		for _, rs := range replicaSets(t, huge) {
			if got := ptr.Deref(rs.Spec.Replicas, 0); got <= 0 {
				return fmt.Errorf("ReplicaSet replicas %d", got)
			}
			if rs.Status.Replicas > 0 {
				return nil
			}
		}
		return fmt.Errorf("no pods yet")
	})
	patch(t, huge, `{"spec":{"replicas":0}}`)
	eventually(t, "scaled back to 0", func() error {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		live := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				live++
			}
		}
		if live != 0 {
			return fmt.Errorf("%d pods left", live)
		}
		return nil
	})
}
