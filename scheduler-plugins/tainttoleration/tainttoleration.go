// Package tainttoleration is the KubepartsTaintToleration scheduler plugin, a
// drop-in for the in-tree TaintToleration: nodes with a NoSchedule or NoExecute
// taint the pod does not tolerate are filtered out, and among the rest nodes
// with fewer untolerated PreferNoSchedule taints score higher.
package tainttoleration

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	schedcorev1 "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/features"
	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/normalize"
	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/pluginargs"
)

// Name is the plugin's name in a KubeSchedulerConfiguration profile.
const Name = "KubepartsTaintToleration"

// ReasonUntolerated is the Filter failure, worded as stock.
const ReasonUntolerated = "node(s) had untolerated taint(s)"

const preScoreKey fwk.StateKey = "PreScore" + Name

// TaintToleration implements the plugin.
type TaintToleration struct {
	comparisonOperators bool // tolerations with Gt/Lt, behind a feature gate
}

var (
	_ fwk.FilterPlugin      = &TaintToleration{}
	_ fwk.PreScorePlugin    = &TaintToleration{}
	_ fwk.ScorePlugin       = &TaintToleration{}
	_ fwk.ScoreExtensions   = &TaintToleration{}
	_ fwk.EnqueueExtensions = &TaintToleration{}
	_ fwk.SignPlugin        = &TaintToleration{}
)

// New builds the plugin; it takes no args.
func New(_ context.Context, obj runtime.Object, _ fwk.Handle) (fwk.Plugin, error) {
	if err := pluginargs.None(Name, obj); err != nil {
		return nil, err
	}
	return &TaintToleration{comparisonOperators: features.Enabled(features.TaintTolerationComparisonOperators)}, nil
}

// Name implements fwk.Plugin.
func (pl *TaintToleration) Name() string { return Name }

func blocksScheduling(t *corev1.Taint) bool {
	return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
}

// Filter rejects a node with a NoSchedule or NoExecute taint the pod does not
// tolerate. Only removing the taint helps, so it is unresolvable by preemption.
func (pl *TaintToleration) Filter(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, ni fwk.NodeInfo) *fwk.Status {
	logger := klog.FromContext(ctx)
	taint, untolerated := schedcorev1.FindMatchingUntoleratedTaint(logger, ni.Node().Spec.Taints, pod.Spec.Tolerations, blocksScheduling, pl.comparisonOperators)
	if !untolerated {
		return nil
	}
	logger.V(4).Info("node has a taint the pod does not tolerate", "pod", klog.KObj(pod), "node", klog.KObj(ni.Node()), "taint", taint.ToString())
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonUntolerated)
}

// preferTolerations are the tolerations that can match a PreferNoSchedule taint.
type preferTolerations []corev1.Toleration

func (p preferTolerations) Clone() fwk.StateData { return p } // read-only

// PreScore keeps the tolerations Score needs.
func (pl *TaintToleration) PreScore(_ context.Context, state fwk.CycleState, pod *corev1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	var tols preferTolerations
	for _, t := range pod.Spec.Tolerations {
		if t.Effect == "" || t.Effect == corev1.TaintEffectPreferNoSchedule {
			tols = append(tols, t)
		}
	}
	state.Write(preScoreKey, tols)
	return nil
}

// Score counts the node's PreferNoSchedule taints the pod does not tolerate;
// NormalizeScore turns fewer into better.
func (pl *TaintToleration) Score(ctx context.Context, state fwk.CycleState, _ *corev1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	v, err := state.Read(preScoreKey)
	if err != nil {
		return 0, fwk.AsStatus(fmt.Errorf("reading %s: %w", preScoreKey, err))
	}
	tols := v.(preferTolerations)
	logger := klog.FromContext(ctx)
	var n int64
	for i := range ni.Node().Spec.Taints {
		t := &ni.Node().Spec.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule && !schedcorev1.TolerationsTolerateTaint(logger, tols, t, pl.comparisonOperators) {
			n++
		}
	}
	return n, nil
}

// NormalizeScore maps the fewest untolerated taints to the maximum score.
func (pl *TaintToleration) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *corev1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	normalize.ToMax(scores, true)
	return nil
}

// ScoreExtensions implements fwk.ScorePlugin.
func (pl *TaintToleration) ScoreExtensions() fwk.ScoreExtensions { return pl }

// SignPod lets pods with the same tolerations share results.
func (pl *TaintToleration) SignPod(_ context.Context, pod *corev1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{{Key: fwk.TolerationsSignerName, Value: fwk.TolerationsSigner(pod)}}, nil
}

// EventsToRegister requeues a pod when a node appears or loses a taint it did
// not tolerate, or when the pod's own tolerations change.
func (pl *TaintToleration) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeTaint}, QueueingHintFn: pl.afterNodeChange},
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.UpdatePodToleration}, QueueingHintFn: afterOwnTolerationChange},
	}, nil
}

func (pl *TaintToleration) afterNodeChange(logger klog.Logger, pod *corev1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	newNode, ok := newObj.(*corev1.Node)
	if !ok {
		return fwk.Queue, fmt.Errorf("unexpected node event object %T", newObj)
	}
	untolerated := func(n *corev1.Node) bool {
		_, bad := schedcorev1.FindMatchingUntoleratedTaint(logger, n.Spec.Taints, pod.Spec.Tolerations, blocksScheduling, pl.comparisonOperators)
		return bad
	}
	oldNode, _ := oldObj.(*corev1.Node)
	if (oldNode == nil || untolerated(oldNode)) && !untolerated(newNode) {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

// afterOwnTolerationChange requeues only the pod whose tolerations changed.
func afterOwnTolerationChange(_ klog.Logger, pod *corev1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	changed, ok := newObj.(*corev1.Pod)
	if !ok {
		return fwk.Queue, fmt.Errorf("unexpected pod event object %T", newObj)
	}
	if changed.UID == pod.UID {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}
