package daemonset

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubeparts/kubeparts/controllers/internal/controllerref"
	"github.com/kubeparts/kubeparts/controllers/internal/expectations"
	"github.com/kubeparts/kubeparts/controllers/internal/metrics"
	"github.com/kubeparts/kubeparts/controllers/internal/podcontrol"
)

// Name is the controller's canonical kube-controller-manager name.
const Name = "daemonset-controller"

var controllerKind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}

// templateGenerationKey is the (deprecated, still set by stock) pod label with the
// DaemonSet's generation that created the pod.
const templateGenerationKey = "pod-template-generation"

// Reconciler runs one pod of each DaemonSet on every eligible node.
type Reconciler struct {
	Client       client.Client
	APIReader    client.Reader
	Recorder     events.EventRecorder
	Expectations *expectations.Store
	Clock        clock.PassiveClock
	// failedBackoff spaces out replacing a daemon pod that keeps failing on a node
	// (1s doubling to 15min, per DaemonSet and node), as the stock controller does, so
	// that a broken daemon does not become a create/delete hot loop.
	failedBackoff *flowcontrol.Backoff
}

// SetupWithManager registers the controller with workers parallel reconciles.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Expectations == nil {
		r.Expectations = expectations.New(r.Clock, expectations.DefaultTTL)
	}
	metrics.Register()
	if r.failedBackoff == nil {
		r.failedBackoff = flowcontrol.NewBackOff(time.Second, 15*time.Minute)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(Name).
		For(&appsv1.DaemonSet{}).
		Owns(&appsv1.ControllerRevision{}).
		Watches(&corev1.Pod{}, handler.Funcs{
			CreateFunc: func(_ context.Context, e event.CreateEvent, q queue) { r.podEvent(e.Object, false, q) },
			UpdateFunc: func(_ context.Context, e event.UpdateEvent, q queue) {
				r.podEvent(e.ObjectNew, e.ObjectNew.GetDeletionTimestamp() != nil && e.ObjectOld.GetDeletionTimestamp() == nil, q)
			},
			DeleteFunc: func(_ context.Context, e event.DeleteEvent, q queue) { r.podEvent(e.Object, true, q) },
		}).
		// A node's labels, taints or readiness decide where daemons run.
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.allDaemonSets), builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool {
				o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
				return !equality.Semantic.DeepEqual(o.Labels, n.Labels) || !equality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) || o.Spec.Unschedulable != n.Spec.Unschedulable
			},
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// podEvent feeds expectations and queues the pod's DaemonSet.
func (r *Reconciler) podEvent(obj client.Object, deleted bool, q queue) {
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.Kind != controllerKind.Kind {
		return
	}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: ref.Name}}
	if deleted {
		r.Expectations.DeletionObserved(req.String(), obj.GetNamespace()+"/"+obj.GetName())
	} else if obj.GetDeletionTimestamp() == nil {
		r.Expectations.CreationObserved(req.String())
	}
	q.Add(req)
}

func (r *Reconciler) allDaemonSets(ctx context.Context, _ client.Object) []reconcile.Request {
	var list appsv1.DaemonSetList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	out := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return out
}

// Reconcile runs one sync of a DaemonSet.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := req.String()
	ds := &appsv1.DaemonSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, ds); err != nil {
		if apierrors.IsNotFound(err) {
			r.Expectations.Forget(key)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || selector.Empty() {
		r.Recorder.Eventf(ds, nil, corev1.EventTypeWarning, "SelectingAll", "Sync", "This daemon set is selecting all pods. A non-empty selector is required.")
		return ctrl.Result{}, nil
	}
	if ds.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	satisfied := r.Expectations.Satisfied(key)

	var nodeList corev1.NodeList
	if err := r.Client.List(ctx, &nodeList); err != nil {
		return ctrl.Result{}, err
	}
	history, err := r.claimHistory(ctx, ds, selector)
	if err != nil {
		return ctrl.Result{}, err
	}
	cur, old, err := r.currentRevision(ctx, ds, history)
	if err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	hash := cur.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
	podsByNode, err := r.claimPods(ctx, ds, selector)
	if err != nil {
		return ctrl.Result{}, err
	}
	plan := planFor(ds, nodeList.Items, podsByNode, hash, r.Clock.Now())
	if wait := r.holdFailedReplacements(ds, plan); wait > 0 && (plan.recheckAfter == 0 || wait < plan.recheckAfter) {
		plan.recheckAfter = wait
	}
	if satisfied {
		if err := r.apply(ctx, ds, key, hash, plan); err != nil {
			return ctrl.Result{}, err
		}
	}
	inUse := map[string]bool{hash: true}
	for _, pods := range podsByNode {
		for _, p := range pods {
			inUse[p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]] = true
		}
	}
	if err := r.cleanupHistory(ctx, ds, old, inUse); err != nil {
		return ctrl.Result{}, err
	}
	status := plan.status(ds)
	if !equality.Semantic.DeepEqual(status, ds.Status) {
		cp := ds.DeepCopy()
		cp.Status = status
		if err := r.Client.Status().Update(ctx, cp); err != nil && !apierrors.IsConflict(err) {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: plan.recheckAfter}, nil
}

// holdFailedReplacements keeps in the plan only the failed pods whose node is out of
// back-off, starting the next back-off step for those; it returns when to look again.
func (r *Reconciler) holdFailedReplacements(ds *appsv1.DaemonSet, p *plan) time.Duration {
	if len(p.failedOn) == 0 {
		return 0
	}
	failed := map[string]bool{}
	for _, n := range p.failedOn {
		failed[n] = true
	}
	now := r.Clock.Now()
	var wait time.Duration
	var keep []*corev1.Pod
	for _, pod := range p.remove {
		node := targetNode(pod)
		if pod.Status.Phase != corev1.PodFailed || !failed[node] {
			keep = append(keep, pod)
			continue
		}
		id := string(ds.UID) + "/" + node
		if r.failedBackoff.IsInBackOffSinceUpdate(id, now) {
			left := r.failedBackoff.Get(id)
			if wait == 0 || left < wait {
				wait = left
			}
			continue
		}
		r.failedBackoff.Next(id, now)
		r.Recorder.Eventf(ds, pod, corev1.EventTypeWarning, "FailedDaemonPod", "Delete", "Found failed daemon pod %s/%s on node %s, will try to kill it", pod.Namespace, pod.Name, node)
		keep = append(keep, pod)
	}
	p.remove = keep
	return wait
}

// claimPods returns the DaemonSet's active pods grouped by the node they are for.
func (r *Reconciler) claimPods(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector) (map[string][]*corev1.Pod, error) {
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.InNamespace(ds.Namespace)); err != nil {
		return nil, err
	}
	var candidates []*corev1.Pod
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp == nil {
			candidates = append(candidates, &list.Items[i])
		}
	}
	claimer := &controllerref.Claimer{Client: r.Client, Owner: ds, OwnerGVK: controllerKind, Selector: selector, Recheck: r.recheck(ds)}
	owned, err := claimer.ClaimPods(ctx, candidates)
	if err != nil {
		return nil, err
	}
	byNode := map[string][]*corev1.Pod{}
	for _, p := range owned {
		if n := targetNode(p); n != "" {
			byNode[n] = append(byNode[n], p)
		}
	}
	for _, pods := range byNode {
		sort.Slice(pods, func(i, j int) bool { return pods[i].CreationTimestamp.Before(&pods[j].CreationTimestamp) })
	}
	return byNode, nil
}

func (r *Reconciler) claimHistory(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector) ([]*appsv1.ControllerRevision, error) {
	var list appsv1.ControllerRevisionList
	if err := r.Client.List(ctx, &list, client.InNamespace(ds.Namespace)); err != nil {
		return nil, err
	}
	candidates := make([]*appsv1.ControllerRevision, len(list.Items))
	for i := range list.Items {
		candidates[i] = &list.Items[i]
	}
	claimer := &controllerref.Claimer{Client: r.Client, Owner: ds, OwnerGVK: controllerKind, Selector: selector, Recheck: r.recheck(ds)}
	return controllerref.Claim(ctx, claimer, candidates)
}

func (r *Reconciler) recheck(ds *appsv1.DaemonSet) func(context.Context) error {
	return func(ctx context.Context) error {
		fresh := &appsv1.DaemonSet{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ds), fresh); err != nil {
			return err
		}
		if fresh.UID != ds.UID || fresh.DeletionTimestamp != nil {
			return errors.New("daemonset deleted or recreated")
		}
		return nil
	}
}

// apply creates and deletes the pods the plan asks for, under expectations.
func (r *Reconciler) apply(ctx context.Context, ds *appsv1.DaemonSet, key, hash string, p *plan) error {
	deleteKeys := make([]string, len(p.remove))
	for i, pod := range p.remove {
		deleteKeys[i] = pod.Namespace + "/" + pod.Name
	}
	r.Expectations.Expect(key, len(p.create), deleteKeys)
	pods := &podcontrol.Control{Client: r.Client, Recorder: r.Recorder, Expectations: r.Expectations, Controller: Name}
	createErr := pods.Create(ctx, ds, key, len(p.create), func(i int) *corev1.Pod { return newPod(ds, p.create[i], hash) })
	return errors.Join(createErr, pods.Delete(ctx, ds, key, p.remove, deleteKeys))
}

// newPod is the DaemonSet's pod for node: the template, the revision hash, the default
// tolerations and the node pinned through affinity.
func newPod(ds *appsv1.DaemonSet, node, hash string) *corev1.Pod {
	t := ds.Spec.Template.DeepCopy()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ds.Namespace, GenerateName: ds.Name + "-",
			Labels: mergeLabels(t.Labels, map[string]string{
				appsv1.DefaultDaemonSetUniqueLabelKey: hash,
				templateGenerationKey:                 strconv.FormatInt(ds.Generation, 10),
			}),
			Annotations:     t.Annotations,
			Finalizers:      t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*controllerref.NewControllerRef(ds, controllerKind)},
		},
		Spec: t.Spec,
	}
	withDefaultTolerations(&pod.Spec)
	pinToNode(&pod.Spec, node)
	return pod
}
