package tainteviction

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestEvictionTime(t *testing.T) {
	added := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	unreachable := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &metav1.Time{Time: added}}
	notReady := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute, TimeAdded: &metav1.Time{Time: added}}
	noSchedule := corev1.Taint{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule}
	tol := func(key string, secs *int64) corev1.Toleration {
		return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: secs}
	}
	for _, tc := range []struct {
		name   string
		taints []corev1.Taint
		tols   []corev1.Toleration
		want   time.Duration // after added; -1 for never, 0 for now
	}{
		{"no NoExecute taint", []corev1.Taint{noSchedule}, nil, -1},
		{"untolerated: now", []corev1.Taint{unreachable}, nil, 0},
		{"tolerated for ever", []corev1.Taint{unreachable}, []corev1.Toleration{tol(corev1.TaintNodeUnreachable, nil)}, -1},
		{"the default 300s from admission", []corev1.Taint{unreachable}, []corev1.Toleration{tol(corev1.TaintNodeUnreachable, ptr.To[int64](300))}, 300 * time.Second},
		{"shortest of two taints", []corev1.Taint{unreachable, notReady}, []corev1.Toleration{
			tol(corev1.TaintNodeUnreachable, ptr.To[int64](300)), tol(corev1.TaintNodeNotReady, ptr.To[int64](60)),
		}, 60 * time.Second},
		{"one of two taints untolerated", []corev1.Taint{unreachable, notReady}, []corev1.Toleration{tol(corev1.TaintNodeUnreachable, nil)}, 0},
		{"most generous matching toleration", []corev1.Taint{unreachable}, []corev1.Toleration{
			tol(corev1.TaintNodeUnreachable, ptr.To[int64](10)), {Operator: corev1.TolerationOpExists},
		}, -1},
		{"negative seconds mean now", []corev1.Taint{unreachable}, []corev1.Toleration{tol(corev1.TaintNodeUnreachable, ptr.To[int64](-5))}, 0},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: tc.tols}}
		at, ok := evictionTime(pod, tc.taints)
		switch {
		case tc.want < 0 && ok:
			t.Errorf("%s: evicted at %v, want never", tc.name, at)
		case tc.want == 0 && (!ok || !(at.IsZero() || at.Equal(added))):
			t.Errorf("%s: at %v ok %v, want now", tc.name, at, ok)
		case tc.want > 0 && (!ok || !at.Equal(added.Add(tc.want))):
			t.Errorf("%s: at %v ok %v, want %v", tc.name, at, ok, added.Add(tc.want))
		}
	}
}
