package nodelifecycle

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The NoSchedule taints that mirror node conditions, and the NoExecute ones that lead to
// eviction.
var (
	notReadyNoExecute    = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}
	unreachableNoExecute = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
)

// noScheduleTaints is the set of NoSchedule taints a node's conditions and spec call for.
func noScheduleTaints(node *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	add := func(key string) { out = append(out, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule}) }
	if c := condition(node, corev1.NodeReady); c != nil {
		switch c.Status {
		case corev1.ConditionFalse:
			add(corev1.TaintNodeNotReady)
		case corev1.ConditionUnknown:
			add(corev1.TaintNodeUnreachable)
		}
	}
	for cond, key := range map[corev1.NodeConditionType]string{
		corev1.NodeMemoryPressure:     corev1.TaintNodeMemoryPressure,
		corev1.NodeDiskPressure:       corev1.TaintNodeDiskPressure,
		corev1.NodePIDPressure:        corev1.TaintNodePIDPressure,
		corev1.NodeNetworkUnavailable: corev1.TaintNodeNetworkUnavailable,
	} {
		if c := condition(node, cond); c != nil && c.Status == corev1.ConditionTrue {
			add(key)
		}
	}
	if node.Spec.Unschedulable {
		add(corev1.TaintNodeUnschedulable)
	}
	return out
}

// managedNoSchedule lists the NoSchedule taint keys this controller owns: others (an
// operator's own) are never touched.
var managedNoSchedule = []string{
	corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable, corev1.TaintNodeMemoryPressure, corev1.TaintNodeDiskPressure,
	corev1.TaintNodePIDPressure, corev1.TaintNodeNetworkUnavailable, corev1.TaintNodeUnschedulable,
}

// wantedNoExecute is the NoExecute taint the Ready condition calls for, if any.
func wantedNoExecute(node *corev1.Node) *corev1.Taint {
	c := condition(node, corev1.NodeReady)
	if c == nil {
		return nil
	}
	switch c.Status {
	case corev1.ConditionFalse:
		return &notReadyNoExecute
	case corev1.ConditionUnknown:
		return &unreachableNoExecute
	}
	return nil
}

// reconcileTaints returns the node's taints with the managed ones made to match the
// conditions; noExecute is the NoExecute taint to carry (nil for none), decided by the
// caller, which rate-limits adding one. Taints keep their TimeAdded when they stay; a
// NoExecute taint added now gets now as TimeAdded (tolerationSeconds count from it).
func reconcileTaints(node *corev1.Node, noExecute *corev1.Taint, now metav1.Time) []corev1.Taint {
	want := noScheduleTaints(node)
	var out []corev1.Taint
	for _, t := range node.Spec.Taints {
		switch {
		case t.Effect == corev1.TaintEffectNoSchedule && slices.Contains(managedNoSchedule, t.Key):
			if slices.ContainsFunc(want, func(w corev1.Taint) bool { return w.Key == t.Key }) {
				out = append(out, t)
			}
		case t.Effect == corev1.TaintEffectNoExecute && (t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable):
			if noExecute != nil && noExecute.Key == t.Key {
				out = append(out, t)
			}
		default:
			out = append(out, t)
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(out, func(t corev1.Taint) bool { return t.Key == w.Key && t.Effect == w.Effect }) {
			out = append(out, w)
		}
	}
	if noExecute != nil && !slices.ContainsFunc(out, func(t corev1.Taint) bool { return t.Key == noExecute.Key && t.Effect == corev1.TaintEffectNoExecute }) {
		t := *noExecute
		t.TimeAdded = &now
		out = append(out, t)
	}
	return out
}
