package podgroup

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	schedulingv1alpha1 "github.com/kubeparts/kubeparts/api/v1alpha1"
)

func TestStatus(t *testing.T) {
	pod := func(node string, phase corev1.PodPhase) corev1.Pod {
		return corev1.Pod{Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
	}
	pg := &schedulingv1alpha1.PodGroup{Spec: schedulingv1alpha1.PodGroupSpec{MinMember: 2}}
	for _, tc := range []struct {
		name string
		pods []corev1.Pod
		want schedulingv1alpha1.PodGroupPhase
	}{
		{"no pods", nil, schedulingv1alpha1.PodGroupPending},
		{"one of two bound", []corev1.Pod{pod("n", corev1.PodPending), pod("", corev1.PodPending)}, schedulingv1alpha1.PodGroupPending},
		{"both bound", []corev1.Pod{pod("n", corev1.PodPending), pod("m", corev1.PodPending)}, schedulingv1alpha1.PodGroupScheduled},
		{"both running", []corev1.Pod{pod("n", corev1.PodRunning), pod("m", corev1.PodRunning)}, schedulingv1alpha1.PodGroupRunning},
		{"done", []corev1.Pod{pod("n", corev1.PodSucceeded), pod("m", corev1.PodSucceeded)}, schedulingv1alpha1.PodGroupSucceeded},
		{"too many failed", []corev1.Pod{pod("n", corev1.PodFailed), pod("m", corev1.PodRunning)}, schedulingv1alpha1.PodGroupFailed},
		{"a failure with spares", []corev1.Pod{pod("n", corev1.PodFailed), pod("m", corev1.PodRunning), pod("o", corev1.PodRunning)}, schedulingv1alpha1.PodGroupRunning},
	} {
		if got := Status(pg, tc.pods).Phase; got != tc.want {
			t.Errorf("%s: phase %s, want %s", tc.name, got, tc.want)
		}
	}
}
