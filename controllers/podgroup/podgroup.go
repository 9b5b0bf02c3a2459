// Package podgroup is kubeparts' podgroup-controller: it keeps each PodGroup's status
// (phase and pod counts) from the pods labelled with scheduling.kubeparts.dev/pod-group.
// It has no stock counterpart; the gang-scheduling Permit plugin that holds a group's
// pods until minMember can be placed lives with the scheduler.
package podgroup

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	schedulingv1alpha1 "github.com/kubeparts/kubeparts/api/v1alpha1"
)

// Name is the controller's name in --controllers.
const Name = "podgroup-controller"

// ErrCRDMissing is returned by SetupWithManager when the PodGroup CRD is not installed.
var ErrCRDMissing = fmt.Errorf("the PodGroup CRD (scheduling.kubeparts.dev) is not installed: kubectl apply -f config/crd/")

// Reconciler keeps PodGroup status.
type Reconciler struct {
	Client client.Client
}

// SetupWithManager registers the controller; it needs the CRD to be installed.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := schedulingv1alpha1.AddToScheme(mgr.GetScheme()); err != nil {
		return err
	}
	if _, err := mgr.GetRESTMapper().RESTMapping(schedulingv1alpha1.GroupVersion.WithKind("PodGroup").GroupKind(), schedulingv1alpha1.GroupVersion.Version); err != nil {
		if meta.IsNoMatchError(err) {
			return ErrCRDMissing
		}
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(Name).
		For(&schedulingv1alpha1.PodGroup{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
			group := obj.GetLabels()[schedulingv1alpha1.PodGroupLabel]
			if group == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: group}}}
		})).
		Complete(r)
}

// Reconcile recomputes one PodGroup's status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pg := &schedulingv1alpha1.PodGroup{}
	if err := r.Client.Get(ctx, req.NamespacedName, pg); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(pg.Namespace), client.MatchingLabels{schedulingv1alpha1.PodGroupLabel: pg.Name}); err != nil {
		return ctrl.Result{}, err
	}
	st := Status(pg, pods.Items)
	if equality.Semantic.DeepEqual(st, pg.Status) {
		return ctrl.Result{}, nil
	}
	cp := pg.DeepCopy()
	cp.Status = st
	if err := r.Client.Status().Update(ctx, cp); err != nil && !apierrors.IsConflict(err) {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// Status is the status a PodGroup should have given its pods.
func Status(pg *schedulingv1alpha1.PodGroup, pods []corev1.Pod) schedulingv1alpha1.PodGroupStatus {
	st := schedulingv1alpha1.PodGroupStatus{ObservedGeneration: pg.Generation}
	live := int32(0)
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Spec.NodeName != "" {
			st.Scheduled++
		}
		switch p.Status.Phase {
		case corev1.PodRunning:
			st.Running++
		case corev1.PodSucceeded:
			st.Succeeded++
		case corev1.PodFailed:
			st.Failed++
		}
		if p.Status.Phase != corev1.PodFailed {
			live++
		}
	}
	min := pg.Spec.MinMember
	switch {
	case st.Succeeded >= min && st.Running == 0:
		st.Phase = schedulingv1alpha1.PodGroupSucceeded
	case st.Running >= min:
		st.Phase = schedulingv1alpha1.PodGroupRunning
	case st.Failed > 0 && live+st.Succeeded < min:
		st.Phase = schedulingv1alpha1.PodGroupFailed
	case st.Scheduled >= min:
		st.Phase = schedulingv1alpha1.PodGroupScheduled
	default:
		st.Phase = schedulingv1alpha1.PodGroupPending
	}
	return st
}
