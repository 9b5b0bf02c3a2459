package replicaset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// StatusBatchPeriod is how long a pod's status change waits before its ReplicaSet
// syncs, so that the changes of several pods make one status write.
const StatusBatchPeriod = 200 * time.Millisecond

// podEventHandler maps pod events to the ReplicaSets they concern and feeds the
// expectations: a pod's creation or deletion seen in the cache is what lets its owner
// be scaled again.
type podEventHandler struct{ r *Reconciler }

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func (h *podEventHandler) Create(ctx context.Context, e event.TypedCreateEvent[client.Object], q queue) {
	pod, ok := e.Object.(*corev1.Pod)
	if !ok {
		return
	}
	if pod.DeletionTimestamp != nil {
		// Restarted informer: a pod already being deleted counts as deleted.
		h.deleted(pod, q)
		return
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		if req, ok := ownerRequest(pod, ref); ok {
			h.r.Expectations.CreationObserved(req.String())
			q.Add(req)
		}
		return
	}
	h.enqueueSelecting(ctx, pod, q)
}

func (h *podEventHandler) Update(ctx context.Context, e event.TypedUpdateEvent[client.Object], q queue) {
	oldPod, ok1 := e.ObjectOld.(*corev1.Pod)
	newPod, ok2 := e.ObjectNew.(*corev1.Pod)
	if !ok1 || !ok2 || newPod.ResourceVersion == oldPod.ResourceVersion {
		return // periodic resync: nothing changed
	}
	labelsChanged := !equality.Semantic.DeepEqual(oldPod.Labels, newPod.Labels)
	if newPod.DeletionTimestamp != nil && oldPod.DeletionTimestamp == nil {
		// Graceful deletion started: for the owner the pod is gone now, not when the
		// kubelet finishes with it.
		h.deleted(newPod, q)
		if labelsChanged {
			h.deleted(oldPod, q)
		}
		return
	}
	oldRef, newRef := metav1.GetControllerOf(oldPod), metav1.GetControllerOf(newPod)
	if oldRef != nil && (newRef == nil || oldRef.UID != newRef.UID) {
		if req, ok := ownerRequest(oldPod, oldRef); ok {
			q.Add(req) // released or taken over: the old owner may need a replacement
		}
	}
	if newRef != nil {
		if req, ok := ownerRequest(newPod, newRef); ok {
			if oldRef != nil && oldRef.UID == newRef.UID && !labelsChanged {
				// Only its status changed (ready, restarted): what the owner writes is
				// status. Pods of one ReplicaSet tend to change together; one sync a
				// StatusBatchPeriod later writes one status for all of them.
				q.AddAfter(req, StatusBatchPeriod)
			} else {
				q.Add(req)
			}
		}
		return
	}
	if labelsChanged || oldRef != nil {
		h.enqueueSelecting(ctx, newPod, q) // an orphan someone may adopt
	}
}

func (h *podEventHandler) Delete(_ context.Context, e event.TypedDeleteEvent[client.Object], q queue) {
	pod, ok := e.Object.(*corev1.Pod)
	if !ok {
		return
	}
	h.deleted(pod, q)
}

func (h *podEventHandler) Generic(context.Context, event.TypedGenericEvent[client.Object], queue) {}

func (h *podEventHandler) deleted(pod *corev1.Pod, q queue) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return
	}
	if req, ok := ownerRequest(pod, ref); ok {
		h.r.Expectations.DeletionObserved(req.String(), types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}.String())
		q.Add(req)
	}
}

// enqueueSelecting queues every ReplicaSet of the pod's namespace whose selector matches
// it: candidates to adopt an orphan.
func (h *podEventHandler) enqueueSelecting(ctx context.Context, pod *corev1.Pod, q queue) {
	var list appsv1.ReplicaSetList
	if err := h.r.Client.List(ctx, &list, client.InNamespace(pod.Namespace)); err != nil {
		log.FromContext(ctx).Error(err, "listing ReplicaSets for an orphan pod", "pod", klog.KObj(pod))
		return
	}
	for i := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(list.Items[i].Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
}

func ownerRequest(pod *corev1.Pod, ref *metav1.OwnerReference) (reconcile.Request, bool) {
	if ref.Kind != controllerKind.Kind || ref.APIVersion != "apps/v1" {
		return reconcile.Request{}, false
	}
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pod.Namespace, Name: ref.Name}}, true
}
