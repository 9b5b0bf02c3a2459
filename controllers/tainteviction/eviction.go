package tainteviction

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// evictionTime says when pod must go because of node's NoExecute taints: ok is false when
// it may stay for ever; a zero time means now.
func evictionTime(pod *corev1.Pod, taints []corev1.Taint) (at time.Time, ok bool) {
	var deadline time.Time
	found := false
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		var tol *corev1.Toleration
		for j := range pod.Spec.Tolerations {
			if pod.Spec.Tolerations[j].ToleratesTaint(klog.Background(), t, false) {
				// With several matching tolerations, the most generous one wins: a
				// forever toleration, else the longest tolerationSeconds.
				cand := &pod.Spec.Tolerations[j]
				if tol == nil || cand.TolerationSeconds == nil || (tol.TolerationSeconds != nil && *cand.TolerationSeconds > *tol.TolerationSeconds) {
					tol = cand
				}
			}
		}
		if tol == nil {
			return time.Time{}, true // not tolerated: now
		}
		if tol.TolerationSeconds == nil {
			continue // tolerated for ever
		}
		added := time.Time{}
		if t.TimeAdded != nil {
			added = t.TimeAdded.Time
		}
		secs := max(*tol.TolerationSeconds, 0)
		when := added.Add(time.Duration(secs) * time.Second)
		if !found || when.Before(deadline) {
			deadline, found = when, true
		}
	}
	return deadline, found
}
