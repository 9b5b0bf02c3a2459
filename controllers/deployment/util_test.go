package deployment

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func deploy(replicas int32, surge, unavailable string) *appsv1.Deployment {
	parse := func(v string) *intstr.IntOrString {
		if v == "" {
			return nil
		}
		x := intstr.Parse(v)
		return &x
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas:                ptr.To(replicas),
			Strategy:                appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: parse(surge), MaxUnavailable: parse(unavailable)}},
			Template:                corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "d"}}},
			ProgressDeadlineSeconds: ptr.To[int32](600),
		},
	}
}

func rs(name string, specReplicas, available int32, age time.Duration, annotations map[string]string) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: k8stypes.UID("uid-" + name), CreationTimestamp: metav1.NewTime(now.Add(-age)), Annotations: annotations},
		Spec:       appsv1.ReplicaSetSpec{Replicas: ptr.To(specReplicas)},
		Status:     appsv1.ReplicaSetStatus{Replicas: specReplicas, ReadyReplicas: available, AvailableReplicas: available},
	}
}

// Percentages round as the stock controller documents: maxSurge up, maxUnavailable down,
// and both zero after rounding makes maxUnavailable 1.
func TestFenceposts(t *testing.T) {
	for _, tc := range []struct {
		replicas                 int32
		surge, unavailable       string
		wantSurge, wantUnavailab int32
	}{
		{10, "", "", 3, 2},       // 25%/25% defaults: 2.5 up, 2.5 down
		{4, "25%", "25%", 1, 1},  // exact
		{3, "25%", "25%", 1, 0},  // 0.75 up to 1, down to 0
		{1, "0", "10%", 0, 1},    // both 0 after rounding: unavailable 1
		{10, "0", "0", 0, 1},     // validation forbids it, but it must not stall
		{10, "2", "3", 2, 3},     // absolute
		{10, "100%", "0", 10, 0}, // blue-green like
		{5, "10%", "100%", 1, 5}, // 0.5 up to 1
		{0, "25%", "25%", 0, 1},  // nothing to surge over
	} {
		d := deploy(tc.replicas, tc.surge, tc.unavailable)
		s, u := fenceposts(d)
		if s != tc.wantSurge || u != tc.wantUnavailab {
			t.Errorf("replicas %d surge %q unavailable %q: got %d/%d, want %d/%d", tc.replicas, tc.surge, tc.unavailable, s, u, tc.wantSurge, tc.wantUnavailab)
		}
	}
	if got := maxUnavailable(deploy(2, "0", "100%")); got != 2 {
		t.Errorf("maxUnavailable caps at replicas: %d", got)
	}
	recreate := deploy(3, "", "")
	recreate.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if maxSurge(recreate) != 0 || maxUnavailable(recreate) != 0 {
		t.Error("Recreate has no surge and no unavailability budget")
	}
}

func TestNewRSReplicas(t *testing.T) {
	for _, tc := range []struct {
		name        string
		d           *appsv1.Deployment
		old, newRep int32
		want        int32
	}{
		{"fresh rollout grows to surge", deploy(10, "3", "2"), 10, 0, 3},
		{"no room above surge", deploy(10, "3", "2"), 10, 3, 3},
		{"room after old shrank", deploy(10, "3", "2"), 7, 3, 6},
		{"never past desired", deploy(4, "100%", "0"), 0, 3, 4},
	} {
		newRS := rs("new", tc.newRep, 0, time.Minute, nil)
		all := []*appsv1.ReplicaSet{rs("old", tc.old, tc.old, time.Hour, nil), newRS}
		if got := newRSReplicas(tc.d, all, newRS); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// Scaling 10 -> 15 mid-rollout (old 6, new 4 + surge 3 filled, max-replicas 13) spreads
// the added replicas by size, as the stock documentation's example does.
func TestProportionalSizes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int32
		sets     []*appsv1.ReplicaSet
		want     map[string]int32
	}{
		{"grow 10 to 15 with 8+5 at max 13", 15, []*appsv1.ReplicaSet{
			rs("old", 8, 8, time.Hour, map[string]string{MaxReplicasAnnotation: "13"}),
			rs("new", 5, 0, time.Minute, map[string]string{MaxReplicasAnnotation: "13"}),
		}, map[string]int32{"old": 11, "new": 7}},
		{"shrink to 0", 0, []*appsv1.ReplicaSet{
			rs("old", 8, 8, time.Hour, map[string]string{MaxReplicasAnnotation: "13"}),
			rs("new", 5, 0, time.Minute, map[string]string{MaxReplicasAnnotation: "13"}),
		}, map[string]int32{"old": 0, "new": 0}},
		{"rounding leftover goes to the largest", 11, []*appsv1.ReplicaSet{
			rs("a", 5, 5, time.Hour, map[string]string{MaxReplicasAnnotation: "13"}),
			rs("b", 4, 4, 2*time.Hour, map[string]string{MaxReplicasAnnotation: "13"}),
			rs("c", 4, 4, 3*time.Hour, map[string]string{MaxReplicasAnnotation: "13"}),
		}, map[string]int32{"a": 6, "b": 4, "c": 4}},
	} {
		d := deploy(tc.replicas, "3", "2")
		got := proportionalSizes(d, tc.sets)
		total := int32(0)
		for name, want := range tc.want {
			total += got[name]
			if got[name] != want {
				t.Errorf("%s: %s = %d, want %d (all %v)", tc.name, name, got[name], want, got)
			}
		}
		if tc.replicas > 0 && total != tc.replicas+maxSurge(d) {
			t.Errorf("%s: total %d, want replicas+surge %d", tc.name, total, tc.replicas+maxSurge(d))
		}
	}
}

func TestRevisionAnnotations(t *testing.T) {
	d := deploy(3, "", "")
	d.Annotations = map[string]string{"team": "a", lastAppliedAnnotation: "{}", RevisionAnnotation: "9"}
	fresh := &appsv1.ReplicaSet{}
	if !setNewRSAnnotations(d, fresh, "1", false) {
		t.Fatal("new ReplicaSet got no annotations")
	}
	if fresh.Annotations[RevisionAnnotation] != "1" || fresh.Annotations["team"] != "a" || fresh.Annotations[DesiredReplicasAnnotation] != "3" || fresh.Annotations[MaxReplicasAnnotation] != "4" {
		t.Fatalf("annotations %v", fresh.Annotations)
	}
	if _, copied := fresh.Annotations[lastAppliedAnnotation]; copied {
		t.Fatal("last-applied-configuration copied to the ReplicaSet")
	}
	// Rolling back to it later: revision jumps, the old one goes to history.
	setNewRSAnnotations(d, fresh, "4", true)
	setNewRSAnnotations(d, fresh, "7", true)
	if fresh.Annotations[RevisionAnnotation] != "7" || fresh.Annotations[RevisionHistoryAnnotation] != "1,4" {
		t.Fatalf("after two rollbacks: %v", fresh.Annotations)
	}
	if setNewRSAnnotations(d, fresh, "5", true) {
		t.Fatal("a lower revision must not move the annotation back")
	}
}

func TestTemplateHashIgnoresHashLabelAndHonoursCollisions(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}}}
	h0 := templateHash(&tmpl, nil)
	labelled := tmpl.DeepCopy()
	labelled.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = h0
	if templateHash(labelled, nil) != h0 {
		t.Error("the pod-template-hash label changes the hash")
	}
	if !equalIgnoreHash(&tmpl, labelled) {
		t.Error("templates differing only in pod-template-hash compare unequal")
	}
	seen := map[string]bool{h0: true}
	for i := int32(0); i < 5; i++ {
		h := templateHash(&tmpl, ptr.To(i))
		if seen[h] {
			t.Errorf("collision count %d repeats a name", i)
		}
		seen[h] = true
	}
	other := tmpl.DeepCopy()
	other.Spec.Containers = []corev1.Container{{Name: "c", Image: "i"}}
	if templateHash(other, nil) == h0 || equalIgnoreHash(&tmpl, other) {
		t.Error("different templates are not told apart")
	}
}

func TestRolloutConditions(t *testing.T) {
	d := deploy(2, "1", "0")
	newRS := rs("new", 2, 2, time.Minute, nil)
	st := rolloutStatus(d, []*appsv1.ReplicaSet{newRS}, newRS, now)
	if c := getCondition(st, appsv1.DeploymentProgressing); c == nil || c.Reason != ReasonNewRSAvailable || c.Message != `ReplicaSet "new" has successfully progressed.` {
		t.Fatalf("complete rollout: %+v", c)
	}
	if c := getCondition(st, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionTrue || c.Reason != ReasonMinimumAvailable {
		t.Fatalf("available: %+v", c)
	}

	// Stuck: no progress past the deadline.
	stuck := deploy(2, "1", "0")
	stuck.Spec.ProgressDeadlineSeconds = ptr.To[int32](10)
	stuck.Status = appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 1, ReadyReplicas: 2, AvailableReplicas: 2, Conditions: []appsv1.DeploymentCondition{
		newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonRSUpdated, "", now.Add(-11*time.Second)),
	}}
	newStuck := rs("new", 1, 0, time.Minute, nil)
	oldRS := rs("old", 2, 2, time.Hour, nil)
	st = rolloutStatus(stuck, []*appsv1.ReplicaSet{oldRS, newStuck}, newStuck, now)
	if c := getCondition(st, appsv1.DeploymentProgressing); c == nil || c.Status != corev1.ConditionFalse || c.Reason != ReasonTimedOut {
		t.Fatalf("stuck rollout: %+v", st.Conditions)
	}
	if after := progressCheckAfter(stuck, stuck.Status, now.Add(-5*time.Second)); after <= 0 {
		t.Fatalf("a running rollout must be looked at again before its deadline, got %v", after)
	}

	// Below minimum availability.
	low := deploy(4, "1", "1")
	st = calculateStatus(low, []*appsv1.ReplicaSet{rs("a", 4, 2, time.Hour, nil)}, nil, now)
	if c := getCondition(st, appsv1.DeploymentAvailable); c.Status != corev1.ConditionFalse || c.Reason != ReasonMinimumUnavailable {
		t.Fatalf("2 of 4 available with maxUnavailable 1: %+v", c)
	}
	if st.UnavailableReplicas != 2 {
		t.Fatalf("unavailable %d", st.UnavailableReplicas)
	}

	// A ReplicaSet's failure surfaces on the Deployment and clears with it.
	failing := rs("new", 2, 0, time.Minute, nil)
	failing.Status.Conditions = []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "quota"}}
	st = rolloutStatus(d, []*appsv1.ReplicaSet{failing}, failing, now)
	if c := getCondition(st, appsv1.DeploymentReplicaFailure); c == nil || c.Reason != "FailedCreate" {
		t.Fatalf("replica failure not surfaced: %+v", st.Conditions)
	}
	d.Status = st
	if st = rolloutStatus(d, []*appsv1.ReplicaSet{newRS}, newRS, now); getCondition(st, appsv1.DeploymentReplicaFailure) != nil {
		t.Fatal("replica failure kept after it cleared")
	}
}
