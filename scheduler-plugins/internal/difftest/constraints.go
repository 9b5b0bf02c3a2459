package difftest

import (
	"fmt"
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var selectorOps = []corev1.NodeSelectorOperator{
	corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn, corev1.NodeSelectorOpExists,
	corev1.NodeSelectorOpDoesNotExist, corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt,
}

// RandomRequirement returns a node selector requirement over the generated
// label pool; Gt and Lt get a number, sometimes a label that holds a word.
func RandomRequirement(r *rand.Rand) corev1.NodeSelectorRequirement {
	keys := append([]string{corev1.LabelTopologyZone, corev1.LabelHostname}, LabelKeys...)
	req := corev1.NodeSelectorRequirement{Key: Pick(r, keys), Operator: Pick(r, selectorOps)}
	switch req.Operator {
	case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
		pool := append(append([]string{}, LabelVals...), Zones...)
		for range 1 + r.IntN(3) {
			req.Values = append(req.Values, Pick(r, pool))
		}
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		req.Key = "tier"
		req.Values = []string{fmt.Sprint(r.IntN(4))}
	}
	return req
}

// RandomTerm returns a node selector term with label expressions and, now and
// then, a metadata.name field requirement.
func RandomTerm(r *rand.Rand, nodes int) corev1.NodeSelectorTerm {
	var t corev1.NodeSelectorTerm
	for range r.IntN(3) {
		t.MatchExpressions = append(t.MatchExpressions, RandomRequirement(r))
	}
	for i := 0; i < 2 && (r.IntN(4) == 0 || len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0); i++ {
		op := Pick(r, []corev1.NodeSelectorOperator{corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn})
		f := corev1.NodeSelectorRequirement{Key: metav1.ObjectNameField, Operator: op}
		for range 1 + r.IntN(2) {
			f.Values = append(f.Values, fmt.Sprintf("node-%d", r.IntN(nodes+1)))
		}
		t.MatchFields = append(t.MatchFields, f)
	}
	return t
}

// AddNodeAffinity gives pod a random nodeSelector and required and preferred
// node affinity terms (each part present or not).
func AddNodeAffinity(r *rand.Rand, pod *corev1.Pod, nodes int) {
	if r.IntN(3) == 0 {
		pod.Spec.NodeSelector = map[string]string{}
		for range 1 + r.IntN(2) {
			pod.Spec.NodeSelector[Pick(r, LabelKeys)] = Pick(r, LabelVals)
		}
	}
	na := &corev1.NodeAffinity{}
	if r.IntN(2) == 0 {
		req := &corev1.NodeSelector{}
		for range 1 + r.IntN(3) {
			req.NodeSelectorTerms = append(req.NodeSelectorTerms, RandomTerm(r, nodes))
		}
		na.RequiredDuringSchedulingIgnoredDuringExecution = req
	}
	if r.IntN(2) == 0 {
		for range 1 + r.IntN(3) {
			pref := corev1.PreferredSchedulingTerm{Weight: int32(1 + r.IntN(100)), Preference: RandomTerm(r, nodes)}
			pref.Preference.MatchFields = nil // API validation forbids matchFields in preferred terms
			if len(pref.Preference.MatchExpressions) == 0 {
				pref.Preference.MatchExpressions = []corev1.NodeSelectorRequirement{RandomRequirement(r)}
			}
			na.PreferredDuringSchedulingIgnoredDuringExecution = append(na.PreferredDuringSchedulingIgnoredDuringExecution, pref)
		}
	}
	if na.RequiredDuringSchedulingIgnoredDuringExecution != nil || na.PreferredDuringSchedulingIgnoredDuringExecution != nil {
		pod.Spec.Affinity = &corev1.Affinity{NodeAffinity: na}
	}
}

// AddTolerations gives pod random tolerations of the generated taints,
// including the match-everything toleration now and then.
func AddTolerations(r *rand.Rand, pod *corev1.Pod) {
	for range r.IntN(4) {
		t := corev1.Toleration{Key: Pick(r, TaintKeys), Operator: corev1.TolerationOpEqual, Value: Pick(r, LabelVals)}
		switch r.IntN(4) {
		case 0:
			t.Operator, t.Value = corev1.TolerationOpExists, ""
		case 1:
			t.Operator, t.Value, t.Key = corev1.TolerationOpExists, "", "" // tolerates every key
		}
		if r.IntN(3) != 0 {
			t.Effect = Pick(r, Effects)
		}
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, t)
	}
}
