package replicaset

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/kubeparts/kubeparts/controllers/internal/controllerref"
	"github.com/kubeparts/kubeparts/controllers/internal/expectations"
	"github.com/kubeparts/kubeparts/controllers/internal/metrics"
	"github.com/kubeparts/kubeparts/controllers/internal/ownerindex"
	"github.com/kubeparts/kubeparts/controllers/internal/podcontrol"
)

// Name is the controller's canonical kube-controller-manager name.
const Name = "replicaset-controller"

// BurstReplicas caps the pods created or deleted in one sync, as in the stock controller.
const BurstReplicas = 500

var controllerKind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}

// Reconciler keeps ReplicaSets at their desired replicas.
type Reconciler struct {
	Client client.Client
	// APIReader reads past the cache, to confirm an owner before adopting orphans.
	APIReader    client.Reader
	Recorder     events.EventRecorder
	Expectations *expectations.Store
	Clock        clock.PassiveClock
	Burst        int
}

// SetupWithManager registers the controller with workers parallel reconciles.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	if r.Expectations == nil {
		r.Expectations = expectations.New(r.Clock, expectations.DefaultTTL)
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Burst == 0 {
		r.Burst = BurstReplicas
	}
	metrics.Register()
	for _, obj := range []client.Object{&corev1.Pod{}, &appsv1.ReplicaSet{}} {
		if err := ownerindex.Register(context.Background(), mgr.GetFieldIndexer(), obj); err != nil {
			return err
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(Name).
		For(&appsv1.ReplicaSet{}).
		Watches(&corev1.Pod{}, &podEventHandler{r: r}).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

// Reconcile runs one sync of a ReplicaSet: claim pods, scale when the cache can be
// trusted, write status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := req.String()
	rs := &appsv1.ReplicaSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, rs); err != nil {
		if apierrors.IsNotFound(err) {
			r.Expectations.Forget(key)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil || selector.Empty() {
		// The apiserver rejects such objects; one that slipped in can never be synced.
		r.Recorder.Eventf(rs, nil, corev1.EventTypeWarning, "InvalidSelector", "Sync", "invalid selector: %v", err)
		return ctrl.Result{}, nil
	}
	// Satisfied must be read before listing pods: an expectation met after the list
	// would let a sync act on a list that lacks the pods it was waiting for.
	needsSync := r.Expectations.Satisfied(key)

	// Only the pods it owns and the orphans it may adopt: pods of other controllers
	// are never claimed.
	var ownedList, orphans corev1.PodList
	if err := ownerindex.OwnedOrOrphan(ctx, r.Client, rs.Namespace, string(rs.UID), &ownedList, &orphans); err != nil {
		return ctrl.Result{}, err
	}
	candidates := append(ownedList.Items, orphans.Items...)
	var active []*corev1.Pod
	terminating := 0
	for i := range candidates {
		p := &candidates[i]
		if isActive(p) {
			active = append(active, p)
		} else if p.DeletionTimestamp != nil && isOwnedBy(p, rs.UID) {
			terminating++
		}
	}
	claimer := &controllerref.Claimer{
		Client: r.Client, Owner: rs, OwnerGVK: controllerKind, Selector: selector,
		Recheck: func(ctx context.Context) error { return r.recheck(ctx, rs) },
	}
	owned, err := claimer.ClaimPods(ctx, active)
	if err != nil {
		return ctrl.Result{}, err
	}

	var manageErr error
	if needsSync && rs.DeletionTimestamp == nil {
		manageErr = r.manageReplicas(ctx, rs, owned, key)
	}
	now := r.Clock.Now()
	status := calculateStatus(rs, owned, terminating, manageErr, now)
	if !equality.Semantic.DeepEqual(status, rs.Status) {
		updated := rs.DeepCopy()
		updated.Status = status
		if err := r.Client.Status().Update(ctx, updated); err != nil {
			if apierrors.IsConflict(err) && manageErr == nil {
				// A newer version exists (a scale, say); its watch event brings us back and
				// the status is computed afresh then.
				return ctrl.Result{}, nil
			}
			return ctrl.Result{}, errors.Join(manageErr, err)
		}
	}
	if manageErr != nil {
		return ctrl.Result{}, manageErr
	}
	if wait := nextAvailableCheck(rs, owned, now); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	return ctrl.Result{}, nil
}

// recheck confirms with a live read that rs still exists under the same UID and is not
// being deleted: the cache may not have caught up with a deletion.
func (r *Reconciler) recheck(ctx context.Context, rs *appsv1.ReplicaSet) error {
	fresh := &appsv1.ReplicaSet{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(rs), fresh); err != nil {
		return err
	}
	if fresh.UID != rs.UID {
		return fmt.Errorf("replicaset %s/%s was recreated (uid %s, cached %s)", rs.Namespace, rs.Name, fresh.UID, rs.UID)
	}
	if fresh.DeletionTimestamp != nil {
		return fmt.Errorf("replicaset %s/%s is being deleted", rs.Namespace, rs.Name)
	}
	return nil
}

// manageReplicas creates or deletes pods to close the gap to spec.replicas, at most
// Burst per sync.
func (r *Reconciler) manageReplicas(ctx context.Context, rs *appsv1.ReplicaSet, owned []*corev1.Pod, key string) error {
	want := int(*rs.Spec.Replicas)
	diff := len(owned) - want
	switch {
	case diff < 0:
		n := min(-diff, r.Burst)
		r.Expectations.ExpectCreations(key, n)
		return r.pods().Create(ctx, rs, key, n, func(int) *corev1.Pod { return podFromTemplate(rs) })
	case diff > 0:
		n := min(diff, r.Burst)
		related, err := r.relatedPods(ctx, rs, owned)
		if err != nil {
			return err
		}
		victims := podsToDelete(owned, related, n, r.Clock.Now())
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = types.NamespacedName{Namespace: p.Namespace, Name: p.Name}.String()
		}
		r.Expectations.ExpectDeletions(key, keys)
		return r.pods().Delete(ctx, rs, key, victims, keys)
	}
	return nil
}

// relatedPods are the active pods of every ReplicaSet with the same controller as rs
// (the ReplicaSets of one Deployment), used to spread deletions over nodes.
func (r *Reconciler) relatedPods(ctx context.Context, rs *appsv1.ReplicaSet, owned []*corev1.Pod) ([]*corev1.Pod, error) {
	owner := metav1.GetControllerOf(rs)
	if owner == nil {
		return owned, nil
	}
	var rsList appsv1.ReplicaSetList
	if err := r.Client.List(ctx, &rsList, client.InNamespace(rs.Namespace), client.MatchingFields{ownerindex.Field: string(owner.UID)}); err != nil {
		return nil, err
	}
	var related []*corev1.Pod
	for i := range rsList.Items {
		var pods corev1.PodList
		if err := r.Client.List(ctx, &pods, client.InNamespace(rs.Namespace), client.MatchingFields{ownerindex.Field: string(rsList.Items[i].UID)}); err != nil {
			return nil, err
		}
		for j := range pods.Items {
			if isActive(&pods.Items[j]) {
				related = append(related, &pods.Items[j])
			}
		}
	}
	return related, nil
}

func (r *Reconciler) pods() *podcontrol.Control {
	return &podcontrol.Control{Client: r.Client, Recorder: r.Recorder, Expectations: r.Expectations, Controller: Name}
}

// podFromTemplate is a pod of rs: the template's labels, annotations, finalizers and
// spec, a name generated from the ReplicaSet's, and the ControllerRef.
func podFromTemplate(rs *appsv1.ReplicaSet) *corev1.Pod {
	t := rs.Spec.Template
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       rs.Namespace,
			GenerateName:    rs.Name + "-",
			Labels:          labels.Merge(nil, t.Labels),
			Annotations:     labels.Merge(nil, t.Annotations),
			Finalizers:      append([]string(nil), t.Finalizers...),
			OwnerReferences: []metav1.OwnerReference{*controllerref.NewControllerRef(rs, controllerKind)},
		},
		Spec: *t.Spec.DeepCopy(),
	}
	return pod
}

func isOwnedBy(p *corev1.Pod, uid types.UID) bool {
	ref := metav1.GetControllerOf(p)
	return ref != nil && ref.UID == uid
}
