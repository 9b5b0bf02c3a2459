package replicaset

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

// calculateStatus is the status a ReplicaSet should have given its active owned pods,
// the number of its pods being deleted, and the error (if any) of the last scaling
// attempt, which sets or clears the ReplicaFailure condition.
func calculateStatus(rs *appsv1.ReplicaSet, active []*corev1.Pod, terminating int, manageErr error, now time.Time) appsv1.ReplicaSetStatus {
	st := *rs.Status.DeepCopy()
	templateLabels := labels.Set(rs.Spec.Template.Labels).AsSelectorPreValidated()
	var fullyLabeled, ready, available int32
	for _, p := range active {
		if templateLabels.Matches(labels.Set(p.Labels)) {
			fullyLabeled++
		}
		if podReady(p) {
			ready++
			if isAvailable(p, rs.Spec.MinReadySeconds, now) {
				available++
			}
		}
	}
	st.Replicas = int32(len(active))
	st.FullyLabeledReplicas = fullyLabeled
	st.ReadyReplicas = ready
	st.AvailableReplicas = available
	st.TerminatingReplicas = ptr.To(int32(terminating))
	st.ObservedGeneration = rs.Generation

	failure := conditionIndex(st.Conditions, appsv1.ReplicaSetReplicaFailure)
	switch {
	case manageErr != nil && failure < 0:
		reason := "FailedCreate"
		if int32(len(active)) > ptr.Deref(rs.Spec.Replicas, 1) {
			reason = "FailedDelete"
		}
		st.Conditions = append(st.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(now), Reason: reason, Message: manageErr.Error(),
		})
	case manageErr == nil && failure >= 0:
		st.Conditions = append(st.Conditions[:failure:failure], st.Conditions[failure+1:]...)
	}
	return st
}

// isAvailable: ready for at least minReadySeconds.
func isAvailable(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	since := readySince(p)
	if since.IsZero() {
		return false
	}
	return minReadySeconds == 0 || !since.Add(time.Duration(minReadySeconds)*time.Second).After(now)
}

func conditionIndex(conds []appsv1.ReplicaSetCondition, t appsv1.ReplicaSetConditionType) int {
	for i, c := range conds {
		if c.Type == t {
			return i
		}
	}
	return -1
}

// nextAvailableCheck is how long until the next ready-but-not-yet-available pod becomes
// available; 0 when none is waiting.
func nextAvailableCheck(rs *appsv1.ReplicaSet, active []*corev1.Pod, now time.Time) time.Duration {
	if rs.Spec.MinReadySeconds == 0 {
		return 0
	}
	var next time.Duration
	for _, p := range active {
		since := readySince(p)
		if since.IsZero() || isAvailable(p, rs.Spec.MinReadySeconds, now) {
			continue
		}
		wait := since.Add(time.Duration(rs.Spec.MinReadySeconds) * time.Second).Sub(now)
		if next == 0 || wait < next {
			next = wait
		}
	}
	return next
}
