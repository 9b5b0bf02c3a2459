package replicaset

import (
	"errors"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func rsFixture(replicas, minReady int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "rs", Namespace: "ns", Generation: 4},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas), MinReadySeconds: minReady,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "a", "tier": "web"}}},
		},
	}
}

func TestCalculateStatus(t *testing.T) {
	full := func(name string) *podBuilder {
		return pod(name).label("app", "a").label("tier", "web").node("n").running()
	}
	for _, tc := range []struct {
		name        string
		rs          *appsv1.ReplicaSet
		pods        []*corev1.Pod
		terminating int
		err         error
		want        appsv1.ReplicaSetStatus
		failure     string // reason of ReplicaFailure, "" for none
	}{
		{name: "counts", rs: rsFixture(3, 0), pods: []*corev1.Pod{
			full("a").ready(time.Minute).obj(), full("b").obj(), pod("c").label("app", "a").obj(),
		}, terminating: 2, want: appsv1.ReplicaSetStatus{Replicas: 3, FullyLabeledReplicas: 2, ReadyReplicas: 1, AvailableReplicas: 1, TerminatingReplicas: ptr.To[int32](2), ObservedGeneration: 4}},
		{name: "minReadySeconds holds back availability", rs: rsFixture(2, 30), pods: []*corev1.Pod{
			full("a").ready(10 * time.Second).obj(), full("b").ready(31 * time.Second).obj(),
		}, want: appsv1.ReplicaSetStatus{Replicas: 2, FullyLabeledReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 1, TerminatingReplicas: ptr.To[int32](0), ObservedGeneration: 4}},
		{name: "failed create sets ReplicaFailure", rs: rsFixture(3, 0), pods: []*corev1.Pod{full("a").obj()}, err: errors.New("quota exceeded"),
			want: appsv1.ReplicaSetStatus{Replicas: 1, FullyLabeledReplicas: 1, TerminatingReplicas: ptr.To[int32](0), ObservedGeneration: 4}, failure: "FailedCreate"},
		{name: "failed delete sets ReplicaFailure", rs: rsFixture(0, 0), pods: []*corev1.Pod{full("a").obj()}, err: errors.New("forbidden"),
			want: appsv1.ReplicaSetStatus{Replicas: 1, FullyLabeledReplicas: 1, TerminatingReplicas: ptr.To[int32](0), ObservedGeneration: 4}, failure: "FailedDelete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := calculateStatus(tc.rs, tc.pods, tc.terminating, tc.err, now)
			conds := got.Conditions
			got.Conditions = nil
			if got.Replicas != tc.want.Replicas || got.FullyLabeledReplicas != tc.want.FullyLabeledReplicas || got.ReadyReplicas != tc.want.ReadyReplicas ||
				got.AvailableReplicas != tc.want.AvailableReplicas || *got.TerminatingReplicas != *tc.want.TerminatingReplicas || got.ObservedGeneration != tc.want.ObservedGeneration {
				t.Fatalf("status = %+v (terminating %d), want %+v", got, *got.TerminatingReplicas, tc.want)
			}
			switch {
			case tc.failure == "" && len(conds) != 0:
				t.Fatalf("unexpected conditions %+v", conds)
			case tc.failure != "" && (len(conds) != 1 || conds[0].Reason != tc.failure || conds[0].Message != tc.err.Error()):
				t.Fatalf("conditions = %+v, want one ReplicaFailure %s", conds, tc.failure)
			}
		})
	}
}

func TestReplicaFailureClearsOnSuccess(t *testing.T) {
	rs := rsFixture(1, 0)
	rs.Status = calculateStatus(rs, nil, 0, errors.New("boom"), now)
	if len(rs.Status.Conditions) != 1 {
		t.Fatal("failure not recorded")
	}
	kept := calculateStatus(rs, nil, 0, errors.New("again"), now.Add(time.Minute))
	if kept.Conditions[0].LastTransitionTime != rs.Status.Conditions[0].LastTransitionTime {
		t.Fatal("a repeated failure moved the transition time")
	}
	if cleared := calculateStatus(rs, nil, 0, nil, now); len(cleared.Conditions) != 0 {
		t.Fatalf("ReplicaFailure kept after a successful sync: %+v", cleared.Conditions)
	}
	if len(rs.Status.Conditions) != 1 {
		t.Fatal("calculateStatus modified its input")
	}
}

func TestNextAvailableCheck(t *testing.T) {
	rs := rsFixture(2, 30)
	pods := []*corev1.Pod{pod("a").running().ready(10 * time.Second).obj(), pod("b").running().ready(25 * time.Second).obj(), pod("c").running().obj()}
	if got := nextAvailableCheck(rs, pods, now); got != 5*time.Second {
		t.Fatalf("next check in %v, want 5s", got)
	}
	if got := nextAvailableCheck(rsFixture(2, 0), pods, now); got != 0 {
		t.Fatalf("no minReadySeconds: next check %v, want 0", got)
	}
}
