// Package gang is the KubepartsGang scheduler plugin: all-or-nothing
// placement for the pods of a PodGroup (scheduling.kubeparts.dev/v1alpha1),
// which none of the stock plugins offers.
//
// A pod joins a group with the label scheduling.kubeparts.dev/pod-group=<name>.
// Its group's pods are filtered and reserved one at a time as usual, then held
// at Permit until minMember of them have a node; the last one releases them
// all together. If the group cannot be completed they are all rejected
// together, which returns their reserved room to the cluster:
//
//   - when any pod of the group fails to find a node (PostFilter), the group's
//     waiting pods are rejected at once, so two groups competing for the same
//     nodes never hold each other's room until a timeout: the group that hits
//     the wall steps back and the other can complete;
//   - when a waiting pod times out (scheduleTimeoutSeconds), or is rejected or
//     fails to bind, its siblings are rejected with it (Unreserve).
//
// Rejected pods go back to the queue; a freed node or a new group member brings
// them back. The plugin keeps no state of its own beyond a PodGroup cache: the
// waiting pods live in the framework and placed pods are counted from the
// scheduler's snapshot, so a failed bind cannot leave a stale count behind.
package gang

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/kubeparts/kubeparts/api/v1alpha1"
	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/pluginargs"
)

// Name is the plugin's name in a KubeSchedulerConfiguration profile.
const Name = "KubepartsGang"

// PodGroupsResource is the PodGroup resource in the form the scheduler's
// event registration takes for custom resources.
const PodGroupsResource fwk.EventResource = "podgroups.v1alpha1.scheduling.kubeparts.dev"

// defaultTimeout applies when a PodGroup has no scheduleTimeoutSeconds (the
// CRD defaults it, this covers objects created before the default existed).
const defaultTimeout = 60 * time.Second

// Gang implements the plugin.
type Gang struct {
	handle fwk.Handle
	pods   corelisters.PodLister
	groups cache.SharedIndexInformer
}

var (
	_ fwk.PreFilterPlugin   = &Gang{}
	_ fwk.PostFilterPlugin  = &Gang{}
	_ fwk.PermitPlugin      = &Gang{}
	_ fwk.ReservePlugin     = &Gang{}
	_ fwk.EnqueueExtensions = &Gang{}
	_ fwk.SignPlugin        = &Gang{}
)

// New builds the plugin and starts its PodGroup informer; it takes no args.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	if err := pluginargs.None(Name, obj); err != nil {
		return nil, err
	}
	if h.KubeConfig() == nil {
		return nil, fmt.Errorf("plugin %s needs a kubeconfig to watch PodGroups", Name)
	}
	client, err := dynamic.NewForConfig(h.KubeConfig())
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", Name, err)
	}
	podInformer := h.SharedInformerFactory().Core().V1().Pods()
	g := &Gang{handle: h, pods: podInformer.Lister()}
	// A group turned away for having too few pods must be retried when the
	// missing ones are created, but the scheduler does not requeue on the
	// creation of unscheduled pods (only its alpha GangScheduling gate does):
	// activate the waiting siblings ourselves.
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok && pod.Spec.NodeName == "" && groupOf(pod) != "" {
			g.activateSiblings(klog.FromContext(ctx), pod)
		}
	}}); err != nil {
		return nil, fmt.Errorf("plugin %s: %w", Name, err)
	}
	g.groups = dynamicinformer.NewDynamicSharedInformerFactory(client, 0).
		ForResource(v1alpha1.GroupVersion.WithResource("podgroups")).Informer()
	// Keep typed PodGroups in the cache so lookups need no conversion.
	if err := g.groups.SetTransform(toPodGroup); err != nil {
		return nil, err
	}
	// Not waited for here: a missing CRD must not stop the scheduler; pods of
	// a group stay pending with a clear message until the cache has synced.
	go g.groups.RunWithContext(ctx)
	return g, nil
}

func toPodGroup(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil // tombstones and already-typed objects pass through
	}
	pg := &v1alpha1.PodGroup{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, pg); err != nil {
		return nil, err
	}
	return pg, nil
}

// Name implements fwk.Plugin.
func (g *Gang) Name() string { return Name }

// groupOf returns the pod's group name, or "" for a pod outside any group.
func groupOf(pod *corev1.Pod) string { return pod.Labels[v1alpha1.PodGroupLabel] }

func sameGroup(a *corev1.Pod, namespace, group string) bool {
	return a.Namespace == namespace && groupOf(a) == group
}

func (g *Gang) podGroup(namespace, name string) (*v1alpha1.PodGroup, error) {
	obj, exists, err := g.groups.GetStore().GetByKey(namespace + "/" + name)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, apierrors.NewNotFound(v1alpha1.GroupVersion.WithResource("podgroups").GroupResource(), name)
	}
	return obj.(*v1alpha1.PodGroup), nil
}

// activateSiblings moves the pending pods of pod's group back to the active
// queue, so a group that was short of members is tried again at once.
func (g *Gang) activateSiblings(logger klog.Logger, pod *corev1.Pod) {
	members, err := g.pods.List(labels.SelectorFromSet(labels.Set{v1alpha1.PodGroupLabel: groupOf(pod)}))
	if err != nil {
		return
	}
	pending := map[string]*corev1.Pod{}
	for _, m := range members {
		if m.Namespace == pod.Namespace && m.Spec.NodeName == "" && m.UID != pod.UID {
			pending[m.Namespace+"/"+m.Name] = m
		}
	}
	if len(pending) > 0 {
		g.handle.Activate(logger, pending)
	}
}

// PreFilter turns away a group that cannot be complete: its PodGroup is
// missing, or fewer than minMember of its pods exist. Holding nodes for such a
// group would only block others until the timeout.
func (g *Gang) PreFilter(_ context.Context, _ fwk.CycleState, pod *corev1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	name := groupOf(pod)
	if name == "" {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	if !g.groups.HasSynced() {
		// An error, not Unschedulable: the pod goes to the backoff queue and
		// is retried within seconds. As unschedulable it would wait for an
		// event, and the PodGroup events of the initial sync may all have
		// come before it was parked, leaving it for the 5-minute flush.
		return nil, fwk.AsStatus(errors.New("waiting for the PodGroup cache to sync (is the PodGroup CRD installed?)"))
	}
	pg, err := g.podGroup(pod.Namespace, name)
	if apierrors.IsNotFound(err) {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %s/%s not found", pod.Namespace, name))
	} else if err != nil {
		return nil, fwk.AsStatus(err)
	}
	// The scheduler's pod informer has no namespace index: list by label and
	// filter, which is what a namespaced list would do anyway.
	members, err := g.pods.List(labels.SelectorFromSet(labels.Set{v1alpha1.PodGroupLabel: name}))
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	live := 0
	for _, m := range members {
		if m.Namespace == pod.Namespace && m.DeletionTimestamp == nil && m.Status.Phase != corev1.PodSucceeded && m.Status.Phase != corev1.PodFailed {
			live++
		}
	}
	if live < int(pg.Spec.MinMember) {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("PodGroup %s/%s has %d of its minMember %d pods", pod.Namespace, name, live, pg.Spec.MinMember))
	}
	return nil, nil
}

// SignPod refuses to sign group members: the verdict for one depends on its
// siblings, so a result computed for another pod cannot be reused. Pods
// outside any group add nothing to the signature.
func (g *Gang) SignPod(_ context.Context, pod *corev1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	if groupOf(pod) != "" {
		return nil, fwk.NewStatus(fwk.Unschedulable, "pod group members are scheduled one by one")
	}
	return nil, nil
}

// PreFilterExtensions implements fwk.PreFilterPlugin.
func (g *Gang) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// PostFilter runs when the pod found no node: its group cannot be completed
// now, so the siblings waiting at Permit give their nodes back.
func (g *Gang) PostFilter(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, _ fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	name := groupOf(pod)
	if name == "" {
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	n := g.rejectWaiting(ctx, pod, fmt.Sprintf("PodGroup %s/%s: pod %s found no node, releasing the group", pod.Namespace, name, pod.Name))
	return nil, fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("released %d waiting pod(s) of PodGroup %s/%s", n, pod.Namespace, name))
}

// Reserve implements fwk.ReservePlugin; all the work is in Permit and Unreserve.
func (g *Gang) Reserve(context.Context, fwk.CycleState, *corev1.Pod, string) *fwk.Status { return nil }

// Unreserve rejects the waiting siblings of a pod that was rejected, timed
// out or failed to bind: a group goes together or not at all.
func (g *Gang) Unreserve(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, _ string) {
	if name := groupOf(pod); name != "" {
		g.rejectWaiting(ctx, pod, fmt.Sprintf("PodGroup %s/%s: pod %s was not placed, releasing the group", pod.Namespace, name, pod.Name))
	}
}

func (g *Gang) rejectWaiting(ctx context.Context, pod *corev1.Pod, msg string) int {
	name, n := groupOf(pod), 0
	g.handle.IterateOverWaitingPods(func(wp fwk.WaitingPod) {
		if p := wp.GetPod(); p.UID != pod.UID && sameGroup(p, pod.Namespace, name) {
			wp.Reject(Name, msg)
			n++
		}
	})
	if n > 0 {
		klog.FromContext(ctx).V(2).Info("Rejected waiting pods of a pod group", "podGroup", klog.KRef(pod.Namespace, name), "rejected", n, "pod", klog.KObj(pod))
	}
	return n
}

// Permit lets the pod through when, with it, minMember pods of its group have
// a node (bound, binding or waiting here); then it releases the waiting ones
// too. Otherwise the pod waits for the others, up to scheduleTimeoutSeconds.
func (g *Gang) Permit(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, nodeName string) (*fwk.Status, time.Duration) {
	name := groupOf(pod)
	if name == "" {
		return nil, 0
	}
	pg, err := g.podGroup(pod.Namespace, name)
	if err != nil {
		return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("PodGroup %s/%s: %v", pod.Namespace, name, err)), 0
	}
	placed, err := g.placed(pod)
	if err != nil {
		return fwk.AsStatus(err), 0
	}
	logger := klog.FromContext(ctx)
	if placed+1 >= int(pg.Spec.MinMember) {
		g.handle.IterateOverWaitingPods(func(wp fwk.WaitingPod) {
			if sameGroup(wp.GetPod(), pod.Namespace, name) {
				wp.Allow(Name)
			}
		})
		logger.V(2).Info("Pod group complete, releasing its pods", "podGroup", klog.KObj(pg), "placed", placed+1, "minMember", pg.Spec.MinMember)
		return nil, 0
	}
	timeout := defaultTimeout
	if pg.Spec.ScheduleTimeoutSeconds != nil {
		timeout = time.Duration(*pg.Spec.ScheduleTimeoutSeconds) * time.Second
	}
	logger.V(3).Info("Pod waits for its group", "pod", klog.KObj(pod), "node", nodeName, "podGroup", klog.KObj(pg), "placed", placed+1, "minMember", pg.Spec.MinMember)
	return fwk.NewStatus(fwk.Wait, fmt.Sprintf("waiting for %d more pod(s) of PodGroup %s/%s", int(pg.Spec.MinMember)-placed-1, pod.Namespace, name)), timeout
}

// placed counts the other pods of the group that have a node in the
// scheduler's view: bound, assumed while binding, or waiting at Permit.
func (g *Gang) placed(pod *corev1.Pod) (int, error) {
	nodes, err := g.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return 0, err
	}
	name, n := groupOf(pod), 0
	for _, ni := range nodes {
		for _, pi := range ni.GetPods() {
			p := pi.GetPod()
			if p.UID != pod.UID && sameGroup(p, pod.Namespace, name) && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				n++
			}
		}
	}
	return n, nil
}

// EventsToRegister brings rejected group pods back when a new member appears,
// room frees up (a placed pod goes away, a node appears or grows) or their
// PodGroup is created or changed.
func (g *Gang) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Add}, QueueingHintFn: afterPodAdd},
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Delete}, QueueingHintFn: afterPodDelete},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAllocatable}},
		{Event: fwk.ClusterEvent{Resource: PodGroupsResource, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: afterPodGroupChange},
	}, nil
}

func afterPodAdd(_ klog.Logger, pod *corev1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	added, ok := newObj.(*corev1.Pod)
	if !ok {
		return fwk.Queue, fmt.Errorf("unexpected pod event object %T", newObj)
	}
	if groupOf(pod) != "" && sameGroup(added, pod.Namespace, groupOf(pod)) {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

func afterPodDelete(_ klog.Logger, _ *corev1.Pod, oldObj, _ any) (fwk.QueueingHint, error) {
	deleted, ok := oldObj.(*corev1.Pod)
	if !ok {
		return fwk.Queue, fmt.Errorf("unexpected pod event object %T", oldObj)
	}
	if deleted.Spec.NodeName == "" {
		return fwk.QueueSkip, nil // freed nothing
	}
	return fwk.Queue, nil
}

func afterPodGroupChange(_ klog.Logger, pod *corev1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	var namespace, name string
	switch o := newObj.(type) {
	case *unstructured.Unstructured:
		namespace, name = o.GetNamespace(), o.GetName()
	case *v1alpha1.PodGroup:
		namespace, name = o.Namespace, o.Name
	default:
		return fwk.Queue, fmt.Errorf("unexpected PodGroup event object %T", newObj)
	}
	if pod.Namespace == namespace && groupOf(pod) == name {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}
