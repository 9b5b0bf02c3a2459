// Package nodeunschedulable is the KubepartsNodeUnschedulable scheduler
// plugin, a drop-in for the in-tree NodeUnschedulable: a cordoned node
// (spec.unschedulable, set by `kubectl cordon`) takes only pods that tolerate
// the node.kubernetes.io/unschedulable:NoSchedule taint, such as DaemonSet pods.
package nodeunschedulable

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	schedcorev1 "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/features"
	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/pluginargs"
)

// Name is the plugin's name in a KubeSchedulerConfiguration profile.
const Name = "KubepartsNodeUnschedulable"

// ReasonUnschedulable is the Filter failure, worded as stock.
const ReasonUnschedulable = "node(s) were unschedulable"

// The taint a cordoned node is treated as having, whether or not the node
// lifecycle controller has put it on the node object yet.
var cordonTaint = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}

// NodeUnschedulable implements the plugin.
type NodeUnschedulable struct{ comparisonOperators bool }

var (
	_ fwk.FilterPlugin      = &NodeUnschedulable{}
	_ fwk.EnqueueExtensions = &NodeUnschedulable{}
	_ fwk.SignPlugin        = &NodeUnschedulable{}
)

// New builds the plugin; it takes no args.
func New(_ context.Context, obj runtime.Object, _ fwk.Handle) (fwk.Plugin, error) {
	if err := pluginargs.None(Name, obj); err != nil {
		return nil, err
	}
	return &NodeUnschedulable{comparisonOperators: features.Enabled(features.TaintTolerationComparisonOperators)}, nil
}

// Name implements fwk.Plugin.
func (pl *NodeUnschedulable) Name() string { return Name }

func (pl *NodeUnschedulable) tolerates(logger klog.Logger, pod *corev1.Pod) bool {
	return schedcorev1.TolerationsTolerateTaint(logger, pod.Spec.Tolerations, &cordonTaint, pl.comparisonOperators)
}

// Filter rejects a cordoned node unless the pod tolerates the cordon.
func (pl *NodeUnschedulable) Filter(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, ni fwk.NodeInfo) *fwk.Status {
	if !ni.Node().Spec.Unschedulable || pl.tolerates(klog.FromContext(ctx), pod) {
		return nil
	}
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ReasonUnschedulable)
}

// SignPod: the verdict depends only on the pod's tolerations.
func (pl *NodeUnschedulable) SignPod(_ context.Context, pod *corev1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{{Key: fwk.TolerationsSignerName, Value: fwk.TolerationsSigner(pod)}}, nil
}

// EventsToRegister requeues a pod when a schedulable node appears, a node is
// uncordoned, or the pod gains a toleration for the cordon.
func (pl *NodeUnschedulable) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeTaint}, QueueingHintFn: afterNodeChange},
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.UpdatePodToleration}, QueueingHintFn: pl.afterOwnTolerationChange},
	}, nil
}

func afterNodeChange(_ klog.Logger, _ *corev1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	newNode, ok := newObj.(*corev1.Node)
	if !ok {
		return fwk.Queue, fmt.Errorf("unexpected node event object %T", newObj)
	}
	oldNode, _ := oldObj.(*corev1.Node)
	if !newNode.Spec.Unschedulable && (oldNode == nil || oldNode.Spec.Unschedulable) {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

func (pl *NodeUnschedulable) afterOwnTolerationChange(logger klog.Logger, pod *corev1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	changed, ok := newObj.(*corev1.Pod)
	if !ok {
		return fwk.Queue, fmt.Errorf("unexpected pod event object %T", newObj)
	}
	if changed.UID == pod.UID && pl.tolerates(logger, changed) {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}
