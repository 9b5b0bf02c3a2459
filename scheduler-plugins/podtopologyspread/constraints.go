package podtopologyspread

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// constraint is a topology spread constraint resolved for one pod: the selector
// is parsed (and extended by matchLabelKeys, or derived from the pod's owners
// for default constraints) and the optional fields carry their defaults.
type constraint struct {
	key        string
	maxSkew    int32
	minDomains int32
	selector   labels.Selector
	// Whether the pod's required node affinity / untolerated taints keep a
	// node out of this constraint's domains.
	honorAffinity bool
	honorTaints   bool
}

// countOn counts the pods of ns on a node that the constraint selects.
// Terminating pods are about to leave, so they do not count; an empty
// selector counts nothing, as it would be meaningless to spread "all pods".
func (c *constraint) countOn(pods []fwk.PodInfo, ns string) int {
	if c.selector.Empty() {
		return 0
	}
	n := 0
	for _, pi := range pods {
		p := pi.GetPod()
		if p.DeletionTimestamp == nil && p.Namespace == ns && c.selector.Matches(labels.Set(p.Labels)) {
			n++
		}
	}
	return n
}

// incoming is the pod being scheduled together with what the node inclusion
// policies need, computed once per cycle.
type incoming struct {
	pod                 *corev1.Pod
	affinity            nodeaffinity.RequiredNodeAffinity
	comparisonOperators bool
}

func (pl *TopologySpread) newIncoming(pod *corev1.Pod) incoming {
	return incoming{
		pod:                 pod,
		affinity:            nodeaffinity.GetRequiredNodeAffinity(pod),
		comparisonOperators: pl.comparisonOperators,
	}
}

// includes reports whether node's domain takes part in c for this pod, per the
// constraint's nodeAffinityPolicy and nodeTaintsPolicy.
func (in *incoming) includes(logger klog.Logger, c *constraint, node *corev1.Node) bool {
	if c.honorAffinity {
		// A malformed affinity is reported by the NodeAffinity plugin; here it
		// just does not match.
		if ok, _ := in.affinity.Match(node); !ok {
			return false
		}
	}
	if c.honorTaints {
		_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logger, node.Spec.Taints, in.pod.Spec.Tolerations,
			blocksScheduling, in.comparisonOperators)
		if untolerated {
			return false
		}
	}
	return true
}

// blocksScheduling selects the taint effects that keep new pods away;
// PreferNoSchedule is only a preference and does not exclude a node.
func blocksScheduling(t *corev1.Taint) bool {
	return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
}

// hasAllKeys reports whether the node carries every constraint's topology key;
// nodes missing one are outside the spreading altogether.
func hasAllKeys(nodeLabels map[string]string, cs []constraint) bool {
	for i := range cs {
		if _, ok := nodeLabels[cs[i].key]; !ok {
			return false
		}
	}
	return true
}

// constraintsFor resolves the pod's constraints with the given
// whenUnsatisfiable action. A pod with constraints of its own never gets the
// default ones, even if none of its own have this action.
func (pl *TopologySpread) constraintsFor(pod *corev1.Pod, action corev1.UnsatisfiableConstraintAction) ([]constraint, error) {
	if len(pod.Spec.TopologySpreadConstraints) > 0 {
		cs, err := resolve(pod.Spec.TopologySpreadConstraints, pod.Labels, action)
		if err != nil {
			return nil, fmt.Errorf("pod's %s topology spread constraints: %w", action, err)
		}
		return cs, nil
	}
	cs, err := resolve(pl.defaultConstraints, pod.Labels, action)
	if err != nil || len(cs) == 0 {
		return nil, err
	}
	sel := pl.owners.selectorFor(pod)
	if sel.Empty() {
		// Nothing groups this pod with others: there is nothing to spread.
		return nil, nil
	}
	for i := range cs {
		cs[i].selector = sel
	}
	return cs, nil
}

// resolve converts the API constraints with the given action.
func resolve(specs []corev1.TopologySpreadConstraint, podLabels map[string]string, action corev1.UnsatisfiableConstraintAction) ([]constraint, error) {
	var out []constraint
	for i := range specs {
		spec := &specs[i]
		if spec.WhenUnsatisfiable != action {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(spec.LabelSelector)
		if err != nil {
			return nil, fmt.Errorf("topologyKey %q: %w", spec.TopologyKey, err)
		}
		sel = withMatchLabelKeys(sel, spec.MatchLabelKeys, podLabels)
		c := constraint{
			key:        spec.TopologyKey,
			maxSkew:    spec.MaxSkew,
			minDomains: 1,
			selector:   sel,
			// Unset policies: affinity is honoured, taints are not.
			honorAffinity: spec.NodeAffinityPolicy == nil || *spec.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor,
			honorTaints:   spec.NodeTaintsPolicy != nil && *spec.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor,
		}
		if spec.MinDomains != nil {
			c.minDomains = *spec.MinDomains
		}
		out = append(out, c)
	}
	return out, nil
}

// withMatchLabelKeys narrows sel to pods sharing the incoming pod's values of
// the listed keys (keys the pod lacks are ignored). A selector that matches
// nothing (no labelSelector) stays that way.
func withMatchLabelKeys(sel labels.Selector, keys []string, podLabels map[string]string) labels.Selector {
	if len(keys) == 0 {
		return sel
	}
	same := labels.Set{}
	for _, k := range keys {
		if v, ok := podLabels[k]; ok {
			same[k] = v
		}
	}
	if len(same) == 0 {
		return sel
	}
	base, ok := sel.Requirements()
	if !ok {
		return sel
	}
	return labels.SelectorFromValidatedSet(same).Add(base...)
}

// hasTaintsHonored reports whether some constraint lets taints exclude nodes,
// i.e. whether the pod's tolerations matter.
func hasTaintsHonored(cs []constraint) bool {
	for i := range cs {
		if cs[i].honorTaints {
			return true
		}
	}
	return false
}

// selectsAny reports whether any constraint selects a pod with these labels.
func selectsAny(cs []constraint, podLabels map[string]string) bool {
	for i := range cs {
		if cs[i].selector.Matches(labels.Set(podLabels)) {
			return true
		}
	}
	return false
}
