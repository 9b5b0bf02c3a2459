package deployment

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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

	"github.com/kubeparts/kubeparts/controllers/internal/controllerref"
	"github.com/kubeparts/kubeparts/controllers/internal/ownerindex"
)

// Name is the controller's canonical kube-controller-manager name.
const Name = "deployment-controller"

var controllerKind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

// Reconciler rolls Deployments out through ReplicaSets.
type Reconciler struct {
	Client client.Client
	// APIReader reads past the cache: to confirm an owner before adoption and to look at
	// a ReplicaSet whose creation reported AlreadyExists.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
}

// SetupWithManager registers the controller with workers parallel reconciles.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if err := ownerindex.Register(context.Background(), mgr.GetFieldIndexer(), &appsv1.ReplicaSet{}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(Name).
		For(&appsv1.Deployment{}).
		Watches(&appsv1.ReplicaSet{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &appsv1.Deployment{}, handler.OnlyControllerOwner())).
		Watches(&appsv1.ReplicaSet{}, handler.EnqueueRequestsFromMapFunc(r.deploymentsSelectingOrphan)).
		// Recreate waits for the old pods to be gone: their deletion is the signal.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.deploymentOfPod), builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(event.CreateEvent) bool { return false }, UpdateFunc: func(event.UpdateEvent) bool { return false },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

// Reconcile runs one sync of a Deployment.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	d := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, req.NamespacedName, d); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		r.Recorder.Eventf(d, nil, corev1.EventTypeWarning, "InvalidSelector", "Sync", "invalid selector: %v", err)
		return ctrl.Result{}, nil
	}
	if selector.Empty() {
		r.Recorder.Eventf(d, nil, corev1.EventTypeWarning, "SelectingAll", "Sync", "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			return ctrl.Result{}, r.updateStatus(ctx, d)
		}
		return ctrl.Result{}, nil
	}
	rsList, err := r.claimReplicaSets(ctx, d, selector)
	if err != nil {
		return ctrl.Result{}, err
	}
	s := &deploymentSync{r: r, d: d, rsList: rsList}
	switch {
	case d.DeletionTimestamp != nil:
		err = s.statusOnly(ctx)
	default:
		if err = s.checkPausedConditions(ctx); err != nil {
			break
		}
		if d.Spec.Paused {
			err = s.sync(ctx)
			break
		}
		var scaling bool
		if scaling, err = s.isScalingEvent(ctx); err != nil {
			break
		}
		if scaling {
			err = s.sync(ctx)
			break
		}
		if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
			err = s.rolloutRecreate(ctx)
		} else {
			err = s.rolloutRolling(ctx)
		}
	}
	if err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{}, nil // a newer version is on its way through the watch
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: progressCheckAfter(s.d, s.d.Status, r.Clock.Now())}, nil
}

// claimReplicaSets returns the ReplicaSets the Deployment owns, adopting matching orphans
// and releasing ones whose labels stopped matching.
func (r *Reconciler) claimReplicaSets(ctx context.Context, d *appsv1.Deployment, selector labels.Selector) ([]*appsv1.ReplicaSet, error) {
	// Only its own ReplicaSets and the orphans it may adopt.
	var owned, orphans appsv1.ReplicaSetList
	if err := ownerindex.OwnedOrOrphan(ctx, r.Client, d.Namespace, string(d.UID), &owned, &orphans); err != nil {
		return nil, err
	}
	items := append(owned.Items, orphans.Items...)
	candidates := make([]*appsv1.ReplicaSet, len(items))
	for i := range items {
		candidates[i] = &items[i]
	}
	claimer := &controllerref.Claimer{
		Client: r.Client, Owner: d, OwnerGVK: controllerKind, Selector: selector,
		Recheck: func(ctx context.Context) error {
			fresh := &appsv1.Deployment{}
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(d), fresh); err != nil {
				return err
			}
			if fresh.UID != d.UID || fresh.DeletionTimestamp != nil {
				return fmt.Errorf("deployment %s/%s was deleted or recreated", d.Namespace, d.Name)
			}
			return nil
		},
	}
	return controllerref.Claim(ctx, claimer, candidates)
}

func (r *Reconciler) updateStatus(ctx context.Context, d *appsv1.Deployment) error {
	return r.Client.Status().Update(ctx, d)
}

// deploymentsSelectingOrphan maps an orphan ReplicaSet to the Deployments that could
// adopt it.
func (r *Reconciler) deploymentsSelectingOrphan(ctx context.Context, obj client.Object) []reconcile.Request {
	if metav1.GetControllerOf(obj) != nil {
		return nil
	}
	var list appsv1.DeploymentList
	if err := r.Client.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(list.Items[i].Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(obj.GetLabels())) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return out
}

// deploymentOfPod maps a deleted pod to the Deployment owning its ReplicaSet.
func (r *Reconciler) deploymentOfPod(ctx context.Context, obj client.Object) []reconcile.Request {
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return nil
	}
	rs := &appsv1.ReplicaSet{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: obj.GetNamespace(), Name: ref.Name}, rs); err != nil || rs.UID != ref.UID {
		return nil
	}
	owner := metav1.GetControllerOf(rs)
	if owner == nil || owner.Kind != controllerKind.Kind {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: rs.Namespace, Name: owner.Name}}}
}

// statusChanged reports whether a freshly computed status differs from the stored one.
func statusChanged(d *appsv1.Deployment, st appsv1.DeploymentStatus) bool {
	return !equality.Semantic.DeepEqual(d.Status, st)
}
