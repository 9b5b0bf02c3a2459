package tainteviction

import (
	"context"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubeparts/kubeparts/controllers/internal/metrics"
	"github.com/kubeparts/kubeparts/controllers/internal/podindex"
)

// Name is the controller's canonical kube-controller-manager name.
const Name = "taint-eviction-controller"

// Reconciler evicts pods from NoExecute-tainted nodes; it reconciles pods.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock

	// pending holds the pods whose eviction is scheduled (waiting out a toleration), so
	// that a taint removed in time is reported as a cancelled eviction.
	mu      sync.Mutex
	pending map[types.NamespacedName]bool
}

// SetupWithManager registers the controller with workers parallel reconciles.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, workers int) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	r.pending = map[types.NamespacedName]bool{}
	metrics.Register()
	if err := podindex.Register(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(Name).
		For(&corev1.Pod{}, builder.WithPredicates(predicate.Funcs{
			// Only a pod's node, tolerations or deletion matter.
			UpdateFunc: func(e event.UpdateEvent) bool {
				o, n := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
				return o.Spec.NodeName != n.Spec.NodeName || len(o.Spec.Tolerations) != len(n.Spec.Tolerations)
			},
		})).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.podsOfNode), builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool {
				return !slices.Equal(noExecute(e.ObjectOld.(*corev1.Node)), noExecute(e.ObjectNew.(*corev1.Node)))
			},
			DeleteFunc: func(event.DeleteEvent) bool { return false },
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

func noExecute(n *corev1.Node) []string {
	var keys []string
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			keys = append(keys, t.Key+"="+t.Value)
		}
	}
	return keys
}

func (r *Reconciler) podsOfNode(ctx context.Context, obj client.Object) []reconcile.Request {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.MatchingFields{podindex.NodeName: obj.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(pods.Items))
	for i := range pods.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&pods.Items[i])})
	}
	return out
}

// Reconcile deletes the pod when its node's NoExecute taints say so, or comes back when
// its toleration runs out.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		if apierrors.IsNotFound(err) {
			r.setPending(req.NamespacedName, false)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: pod.Spec.NodeName}, node); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	at, evict := evictionTime(pod, node.Spec.Taints)
	if !evict {
		if r.setPending(req.NamespacedName, false) {
			r.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, "TaintManagerEviction", "Cancel", "Cancelling deletion of Pod %s", client.ObjectKeyFromObject(pod))
		}
		return ctrl.Result{}, nil
	}
	if wait := at.Sub(r.Clock.Now()); wait > 0 {
		r.setPending(req.NamespacedName, true)
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	r.setPending(req.NamespacedName, false)
	return ctrl.Result{}, r.evict(ctx, pod)
}

// setPending records whether the pod's eviction is scheduled and reports whether it was.
func (r *Reconciler) setPending(key types.NamespacedName, pending bool) (was bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	was = r.pending[key]
	if pending {
		r.pending[key] = true
	} else {
		delete(r.pending, key)
	}
	metrics.PendingEvictions.Set(float64(len(r.pending)))
	return was
}

// evict records why the pod goes (DisruptionTarget condition, event) and deletes it.
func (r *Reconciler) evict(ctx context.Context, pod *corev1.Pod) error {
	cp := pod.DeepCopy()
	now := metav1.NewTime(r.Clock.Now())
	cond := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "DeletionByTaintManager",
		Message: "Taint manager: deleting due to NoExecute taint", LastTransitionTime: now}
	if i := slices.IndexFunc(cp.Status.Conditions, func(c corev1.PodCondition) bool { return c.Type == corev1.DisruptionTarget }); i >= 0 {
		cp.Status.Conditions[i] = cond
	} else {
		cp.Status.Conditions = append(cp.Status.Conditions, cond)
	}
	if err := r.Client.Status().Update(ctx, cp); err != nil {
		// Gone already is fine; a conflict retries with the newer pod.
		return client.IgnoreNotFound(err)
	}
	r.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, "TaintManagerEviction", "Delete", "Marking for deletion Pod %s", client.ObjectKeyFromObject(pod))
	err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}
