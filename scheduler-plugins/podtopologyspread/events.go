package podtopologyspread

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// EventsToRegister lists the cluster changes that can make a pod this plugin
// rejected schedulable, each with a hint that filters out irrelevant ones.
func (pl *TopologySpread) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		// Pods arriving, leaving or relabeled change the counts; the rejected
		// pod gaining a toleration can bring tainted nodes' domains back.
		{
			Event:          fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Add | fwk.UpdatePodLabel | fwk.UpdatePodToleration | fwk.Delete},
			QueueingHintFn: pl.hintPodChange,
		},
		// Nodes change the set of domains (labels) and who is in them (taints).
		{
			Event:          fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.Delete | fwk.UpdateNodeLabel | fwk.UpdateNodeTaint},
			QueueingHintFn: pl.hintNodeChange,
		},
	}, nil
}

// oldAndNew types the objects of an event; either may be nil (add, delete).
func oldAndNew[T any](oldObj, newObj any) (old, cur T, err error) {
	if newObj != nil {
		var ok bool
		if cur, ok = newObj.(T); !ok {
			return old, cur, fmt.Errorf("expected %T, got %T", cur, newObj)
		}
	}
	if oldObj != nil {
		if tomb, ok := oldObj.(cache.DeletedFinalStateUnknown); ok {
			oldObj = tomb.Obj
		}
		var ok bool
		if old, ok = oldObj.(T); !ok {
			return old, cur, fmt.Errorf("expected %T, got %T", old, oldObj)
		}
	}
	return old, cur, nil
}

// counts reports whether other can matter to pod's spreading: pod itself, or a
// pod bound or nominated to a node in the same namespace.
func counts(other, pod *corev1.Pod) bool {
	if other.UID == pod.UID {
		return true
	}
	if other.Spec.NodeName == "" && other.Status.NominatedNodeName == "" {
		return false
	}
	return other.Namespace == pod.Namespace
}

func (pl *TopologySpread) hintPodChange(logger klog.Logger, pod *corev1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	old, cur, err := oldAndNew[*corev1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if (cur != nil && !counts(cur, pod)) || (old != nil && !counts(old, pod)) {
		logger.V(5).Info("Changed pod is not counted by the pod's topology spreading", "pod", klog.KObj(pod))
		return fwk.QueueSkip, nil
	}
	cs, err := pl.constraintsFor(pod, corev1.DoNotSchedule)
	if err != nil {
		return fwk.Queue, err
	}

	switch {
	case old != nil && cur != nil:
		if pod.UID == cur.UID && hasTaintsHonored(cs) && !equality.Semantic.DeepEqual(old.Spec.Tolerations, cur.Spec.Tolerations) {
			logger.V(5).Info("Pod's tolerations changed and a constraint honours taints", "pod", klog.KObj(pod))
			return fwk.Queue, nil
		}
		if equality.Semantic.DeepEqual(old.Labels, cur.Labels) {
			return fwk.QueueSkip, nil
		}
		for i := range cs {
			if cs[i].selector.Matches(labels.Set(old.Labels)) != cs[i].selector.Matches(labels.Set(cur.Labels)) {
				logger.V(5).Info("Relabeled pod entered or left a topology spread constraint", "pod", klog.KObj(pod), "changedPod", klog.KObj(cur))
				return fwk.Queue, nil
			}
		}
		return fwk.QueueSkip, nil
	case cur != nil:
		if selectsAny(cs, cur.Labels) {
			logger.V(5).Info("Added pod is selected by a topology spread constraint", "pod", klog.KObj(pod), "addedPod", klog.KObj(cur))
			return fwk.Queue, nil
		}
		return fwk.QueueSkip, nil
	case old != nil:
		if selectsAny(cs, old.Labels) {
			logger.V(5).Info("Deleted pod was selected by a topology spread constraint", "pod", klog.KObj(pod), "deletedPod", klog.KObj(old))
			return fwk.Queue, nil
		}
		return fwk.QueueSkip, nil
	}
	return fwk.Queue, nil
}

func (pl *TopologySpread) hintNodeChange(logger klog.Logger, pod *corev1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	old, cur, err := oldAndNew[*corev1.Node](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	cs, err := pl.constraintsFor(pod, corev1.DoNotSchedule)
	if err != nil {
		return fwk.Queue, err
	}
	// A node is relevant only when it carries every topology key.
	oldIn := old != nil && hasAllKeys(old.Labels, cs)
	curIn := cur != nil && hasAllKeys(cur.Labels, cs)

	switch {
	case old != nil && cur != nil:
		if oldIn != curIn {
			logger.V(5).Info("Node entered or left the topology spreading", "pod", klog.KObj(pod), "node", klog.KObj(cur))
			return fwk.Queue, nil
		}
		if curIn && (domainChanged(old.Labels, cur.Labels, cs) || !equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints)) {
			logger.V(5).Info("Node moved between domains or changed taints", "pod", klog.KObj(pod), "node", klog.KObj(cur))
			return fwk.Queue, nil
		}
		return fwk.QueueSkip, nil
	case cur != nil:
		if curIn {
			return fwk.Queue, nil
		}
		return fwk.QueueSkip, nil
	default:
		if oldIn {
			return fwk.Queue, nil
		}
		return fwk.QueueSkip, nil
	}
}

// domainChanged reports whether the node's value of some topology key changed.
func domainChanged(oldLabels, curLabels map[string]string, cs []constraint) bool {
	for i := range cs {
		if oldLabels[cs[i].key] != curLabels[cs[i].key] {
			return true
		}
	}
	return false
}
