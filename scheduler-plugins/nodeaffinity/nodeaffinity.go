// Package nodeaffinity is the KubepartsNodeAffinity scheduler plugin, a
// drop-in for the in-tree NodeAffinity: it keeps a pod off nodes that do not
// satisfy its nodeSelector and required node affinity (matchExpressions and
// matchFields), scores nodes by the weights of the preferred terms they match,
// and applies a profile-wide addedAffinity on top of every pod's own.
package nodeaffinity

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	configv1 "k8s.io/kube-scheduler/config/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/normalize"
	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/pluginargs"
)

// Name is the plugin's name in a KubeSchedulerConfiguration profile.
const Name = "KubepartsNodeAffinity"

// Failure reasons, worded as stock so `kubectl describe pod` reads the same.
const (
	ReasonPod      = "node(s) didn't match Pod's node affinity/selector"
	reasonEnforced = "node(s) didn't match scheduler-enforced node affinity"
	reasonConflict = "pod affinity terms conflict"
)

const (
	preFilterKey fwk.StateKey = "PreFilter" + Name
	preScoreKey  fwk.StateKey = "PreScore" + Name
)

// NodeAffinity implements the plugin.
type NodeAffinity struct {
	// From the profile's addedAffinity; nil when not configured.
	enforced  *nodeaffinity.NodeSelector
	preferred *nodeaffinity.PreferredSchedulingTerms
}

var (
	_ fwk.PreFilterPlugin   = &NodeAffinity{}
	_ fwk.FilterPlugin      = &NodeAffinity{}
	_ fwk.PreScorePlugin    = &NodeAffinity{}
	_ fwk.ScorePlugin       = &NodeAffinity{}
	_ fwk.ScoreExtensions   = &NodeAffinity{}
	_ fwk.EnqueueExtensions = &NodeAffinity{}
	_ fwk.SignPlugin        = &NodeAffinity{}
)

// New builds the plugin from NodeAffinityArgs-shaped args.
func New(_ context.Context, obj runtime.Object, _ fwk.Handle) (fwk.Plugin, error) {
	args := configv1.NodeAffinityArgs{}
	if err := pluginargs.Decode(Name, obj, &args); err != nil {
		return nil, err
	}
	pl := &NodeAffinity{}
	if added := args.AddedAffinity; added != nil {
		var err error
		if ns := added.RequiredDuringSchedulingIgnoredDuringExecution; ns != nil {
			if len(ns.NodeSelectorTerms) == 0 {
				return nil, fmt.Errorf("plugin %s: addedAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: must have at least one term", Name)
			}
			if pl.enforced, err = nodeaffinity.NewNodeSelector(ns); err != nil {
				return nil, fmt.Errorf("plugin %s: addedAffinity.requiredDuringSchedulingIgnoredDuringExecution: %w", Name, err)
			}
		}
		if terms := added.PreferredDuringSchedulingIgnoredDuringExecution; len(terms) > 0 {
			for i, t := range terms {
				if t.Weight < 1 || t.Weight > 100 {
					return nil, fmt.Errorf("plugin %s: addedAffinity.preferredDuringSchedulingIgnoredDuringExecution[%d].weight: %d must be in [1, 100]", Name, i, t.Weight)
				}
			}
			if pl.preferred, err = nodeaffinity.NewPreferredSchedulingTerms(terms); err != nil {
				return nil, fmt.Errorf("plugin %s: addedAffinity.preferredDuringSchedulingIgnoredDuringExecution: %w", Name, err)
			}
		}
	}
	return pl, nil
}

// Name implements fwk.Plugin.
func (pl *NodeAffinity) Name() string { return Name }

type required struct {
	affinity nodeaffinity.RequiredNodeAffinity
}

func (r *required) Clone() fwk.StateData { return r } // read-only, shared by clones

func requiredTerms(pod *corev1.Pod) *corev1.NodeSelector {
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil {
		return a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	return nil
}

// PreFilter parses the pod's requirements once. When every required term pins
// metadata.name, only those nodes are worth filtering, which the framework
// uses to skip the rest of the cluster.
func (pl *NodeAffinity) PreFilter(_ context.Context, state fwk.CycleState, pod *corev1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	terms := requiredTerms(pod)
	if terms == nil && pod.Spec.NodeSelector == nil && pl.enforced == nil {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	state.Write(preFilterKey, &required{affinity: nodeaffinity.GetRequiredNodeAffinity(pod)})
	if terms == nil || len(terms.NodeSelectorTerms) == 0 {
		return nil, nil
	}
	var names sets.Set[string]
	for _, term := range terms.NodeSelectorTerms {
		pinned := pinnedNames(term)
		if pinned == nil {
			return nil, nil // this term may match any node
		}
		names = names.Union(pinned)
	}
	if len(names) == 0 {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reasonConflict)
	}
	return &fwk.PreFilterResult{NodeNames: names}, nil
}

// pinnedNames returns the node names a term's metadata.name In requirements
// allow (their intersection), or nil when the term has none.
func pinnedNames(term corev1.NodeSelectorTerm) sets.Set[string] {
	var names sets.Set[string]
	for _, f := range term.MatchFields {
		if f.Key != metav1.ObjectNameField || f.Operator != corev1.NodeSelectorOpIn {
			continue
		}
		if names == nil {
			names = sets.New(f.Values...)
		} else {
			names = names.Intersection(sets.New(f.Values...))
		}
	}
	return names
}

// PreFilterExtensions implements fwk.PreFilterPlugin; other pods do not matter here.
func (pl *NodeAffinity) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Filter checks the profile's enforced affinity, then the pod's own.
func (pl *NodeAffinity) Filter(_ context.Context, state fwk.CycleState, pod *corev1.Pod, ni fwk.NodeInfo) *fwk.Status {
	node := ni.Node()
	if pl.enforced != nil && !pl.enforced.Match(node) {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reasonEnforced)
	}
	var req nodeaffinity.RequiredNodeAffinity
	if v, err := state.Read(preFilterKey); err == nil {
		req = v.(*required).affinity
	} else {
		req = nodeaffinity.GetRequiredNodeAffinity(pod)
	}
	// A parse error (say, a bad Gt value) means the term matches nothing, as
	// API validation should have caught it; the node is simply not a match.
	if ok, _ := req.Match(node); !ok {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonPod)
	}
	return nil
}

type preferred struct {
	terms *nodeaffinity.PreferredSchedulingTerms
}

func (p *preferred) Clone() fwk.StateData { return p } // read-only

func preferredTerms(pod *corev1.Pod) (*nodeaffinity.PreferredSchedulingTerms, error) {
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution != nil {
		return nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
	}
	return nil, nil
}

// PreScore parses the preferred terms, or skips scoring when there are none.
func (pl *NodeAffinity) PreScore(_ context.Context, state fwk.CycleState, pod *corev1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	terms, err := preferredTerms(pod)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if terms == nil && pl.preferred == nil {
		return fwk.NewStatus(fwk.Skip)
	}
	state.Write(preScoreKey, &preferred{terms: terms})
	return nil
}

// Score sums the weights of the matching preferred terms, the profile's and the pod's.
func (pl *NodeAffinity) Score(_ context.Context, state fwk.CycleState, pod *corev1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	var terms *nodeaffinity.PreferredSchedulingTerms
	if v, err := state.Read(preScoreKey); err == nil {
		terms = v.(*preferred).terms
	} else {
		var perr error
		if terms, perr = preferredTerms(pod); perr != nil {
			return 0, fwk.AsStatus(perr)
		}
	}
	var sum int64
	if pl.preferred != nil {
		sum += pl.preferred.Score(ni.Node())
	}
	if terms != nil {
		sum += terms.Score(ni.Node())
	}
	return sum, nil
}

// NormalizeScore scales so the best-matching node gets the maximum.
func (pl *NodeAffinity) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *corev1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	normalize.ToMax(scores, false)
	return nil
}

// ScoreExtensions implements fwk.ScorePlugin.
func (pl *NodeAffinity) ScoreExtensions() fwk.ScoreExtensions { return pl }

// SignPod lets pods with the same selector and affinity share results.
func (pl *NodeAffinity) SignPod(_ context.Context, pod *corev1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	aff, err := fwk.NodeAffinitySigner(pod)
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	return []fwk.SignFragment{
		{Key: fwk.NodeAffinitySignerName, Value: aff},
		{Key: fwk.NodeSelectorSignerName, Value: pod.Spec.NodeSelector},
	}, nil
}

// EventsToRegister requeues a pod when a node appears or its labels change so
// that it newly matches.
func (pl *NodeAffinity) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{{
		Event:          fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel},
		QueueingHintFn: pl.afterNodeChange,
	}}, nil
}

func (pl *NodeAffinity) afterNodeChange(logger klog.Logger, pod *corev1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	newNode, ok := newObj.(*corev1.Node)
	if !ok {
		return fwk.Queue, fmt.Errorf("unexpected node event object %T", newObj)
	}
	if pl.enforced != nil && !pl.enforced.Match(newNode) {
		return fwk.QueueSkip, nil
	}
	req := nodeaffinity.GetRequiredNodeAffinity(pod)
	if ok, err := req.Match(newNode); err != nil || !ok {
		return fwk.QueueSkip, err
	}
	if oldNode, _ := oldObj.(*corev1.Node); oldNode != nil {
		if was, _ := req.Match(oldNode); was {
			return fwk.QueueSkip, nil // it matched before, so it was not why the pod failed
		}
	}
	logger.V(5).Info("node now matches the pod's node affinity", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
	return fwk.Queue, nil
}
