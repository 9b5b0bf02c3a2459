package namespace

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"k8s.io/utils/lru"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
)

// Name is the controller's canonical kube-controller-manager name.
const Name = "namespace-controller"

// retryAfterFailure is how soon a namespace blocked by a failing API is looked at
// again, so that fixing (or removing) the API unblocks it promptly.
const retryAfterFailure = 5 * time.Second

// Reconciler empties and finalizes namespaces being deleted.
type Reconciler struct {
	// Client reads namespaces from the cache.
	Client client.Client
	// Clientset writes the namespace's status and calls /finalize.
	Clientset kubernetes.Interface
	Discovery discovery.DiscoveryInterface
	// Metadata lists and deletes the content, whatever its resource.
	Metadata metadata.Interface
	// Collections deletes a resource's content at once, reading what it deleted.
	Collections collectionDeleter
	Clock       clock.PassiveClock

	// finalized remembers the namespaces this reconciler finalized (by UID). The
	// status write just before /finalize requeues the namespace, and the cache may
	// still hold it unfinalized when that reconcile runs: without this the whole
	// deletion pass would run again (doubling its requests) only to fail on a stale
	// status write.
	finalized *lru.Cache
}

// NewReconciler builds the reconciler on the namespace controller's own client and
// config (package app scales its rate limits as stock does).
func NewReconciler(c client.Client, cfg *rest.Config) (*Reconciler, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cd, err := newCollectionDeleter(cfg)
	if err != nil {
		return nil, err
	}
	return &Reconciler{Client: c, Clientset: cs, Discovery: cs.Discovery(), Metadata: mc, Collections: cd}, nil
}

// SetupWithManager registers the controller with workers parallel reconciles.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	// Enough for the storms of namespaces a cluster sees; a forgotten one costs a
	// second pass, nothing worse.
	r.finalized = lru.New(4096)
	return ctrl.NewControllerManagedBy(mgr).
		Named(Name).
		For(&corev1.Namespace{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

// Reconcile runs one deletion pass over a terminating namespace.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, req.NamespacedName, ns); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ns.DeletionTimestamp == nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return ctrl.Result{}, nil
	}
	if _, done := r.finalized.Get(ns.UID); done {
		return ctrl.Result{}, nil
	}
	now := r.Clock.Now()
	conds := map[corev1.NamespaceConditionType]corev1.NamespaceCondition{}
	set := func(t corev1.NamespaceConditionType, ok bool, reasonOK, msgOK, reasonBad, msgBad string) {
		c := corev1.NamespaceCondition{Type: t, Status: corev1.ConditionFalse, Reason: reasonOK, Message: msgOK, LastTransitionTime: metav1.NewTime(now)}
		if !ok {
			c.Status, c.Reason, c.Message = corev1.ConditionTrue, reasonBad, msgBad
		}
		conds[t] = c
	}

	resources, failedGroups, err := discover(r.Discovery)
	if err != nil {
		set(corev1.NamespaceDeletionDiscoveryFailure, false, "", "", "DiscoveryFailed", fmt.Sprintf("Discovery failed: %v", err))
		if _, uerr := r.writeConditions(ctx, ns, conds); uerr != nil {
			return ctrl.Result{}, uerr
		}
		return ctrl.Result{RequeueAfter: retryAfterFailure}, nil
	}
	set(corev1.NamespaceDeletionDiscoveryFailure, len(failedGroups) == 0, "ResourcesDiscovered", "All resources successfully discovered",
		"DiscoveryFailed", fmt.Sprintf("Discovery failed for some groups, %d failing: %s", len(failedGroups), describeFailures(failedGroups)))
	set(corev1.NamespaceDeletionGVParsingFailure, true, "ParsedGroupVersions", "All legacy kube types successfully parsed", "", "")

	// Pods first: the other content (config, secrets, services) stays until every pod
	// has terminated, so graceful shutdowns still find what they use.
	var left []remaining
	var failures []string
	podsLeft, err := deleteAll(ctx, r.Metadata, r.Collections, ns.Name, resource{gvr: podsGVR, deleteCollection: true})
	if err != nil {
		failures = append(failures, err.Error())
	}
	if podsLeft.count > 0 {
		left = append(left, podsLeft)
	} else if err == nil {
		for _, res := range resources {
			if res.gvr == podsGVR {
				continue
			}
			l, err := deleteAll(ctx, r.Metadata, r.Collections, ns.Name, res)
			if err != nil {
				failures = append(failures, err.Error())
			}
			if l.count > 0 {
				left = append(left, l)
			}
		}
	}
	set(corev1.NamespaceDeletionContentFailure, len(failures) == 0, "ContentDeleted", "All content successfully deleted, may be waiting on finalization",
		"ContentDeletionFailed", fmt.Sprintf("Failed to delete all resource types, %d remaining: %s", len(failures), strings.Join(failures, ", ")))
	resourcesMsg, finalizersMsg := describeRemaining(left)
	set(corev1.NamespaceContentRemaining, len(left) == 0, "ContentRemoved", "All content successfully removed",
		"SomeResourcesRemain", "Some resources are remaining: "+resourcesMsg)
	set(corev1.NamespaceFinalizersRemaining, finalizersMsg == "", "ContentHasNoFinalizers", "All content-preserving finalizers finished",
		"SomeFinalizersRemain", "Some content in the namespace has finalizers remaining: "+finalizersMsg)
	// The namespace as written: /finalize must carry its new resourceVersion.
	ns, err = r.writeConditions(ctx, ns, conds)
	if err != nil {
		return ctrl.Result{}, err
	}

	switch {
	case len(failures) > 0 || len(failedGroups) > 0:
		// Objects of an undiscoverable API cannot be checked: finalizing now could leave
		// them behind in a namespace that no longer exists.
		return ctrl.Result{RequeueAfter: retryAfterFailure}, nil
	case len(left) > 0:
		wait := time.Second
		for _, l := range left {
			wait = max(wait, time.Duration(l.graceSeconds)*time.Second/2)
		}
		return ctrl.Result{RequeueAfter: min(wait, 30*time.Second)}, nil
	}
	return ctrl.Result{}, r.finalize(ctx, ns)
}

// finalize removes the kubernetes finalizer through /finalize; the apiserver then deletes
// the namespace once no other finalizer is left. A conflict (another writer of the
// namespace) is retried on the namespace read anew, as stock does, rather than by a
// whole new deletion pass.
func (r *Reconciler) finalize(ctx context.Context, ns *corev1.Namespace) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cp := ns.DeepCopy()
		cp.Spec.Finalizers = slices.DeleteFunc(cp.Spec.Finalizers, func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
		_, err := r.Clientset.CoreV1().Namespaces().Finalize(ctx, cp, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			if cur, gerr := r.Clientset.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{}); gerr == nil {
				ns = cur
			}
		}
		return err
	})
	if err == nil {
		r.finalized.Add(ns.UID, struct{}{})
	}
	return client.IgnoreNotFound(err)
}

// writeConditions stores the deletion conditions, keeping a condition's transition time
// while its status does not change.
func (r *Reconciler) writeConditions(ctx context.Context, ns *corev1.Namespace, conds map[corev1.NamespaceConditionType]corev1.NamespaceCondition) (*corev1.Namespace, error) {
	cp := ns.DeepCopy()
	changed := false
	for t, c := range conds {
		i := slices.IndexFunc(cp.Status.Conditions, func(x corev1.NamespaceCondition) bool { return x.Type == t })
		if i < 0 {
			cp.Status.Conditions = append(cp.Status.Conditions, c)
			changed = true
			continue
		}
		cur := cp.Status.Conditions[i]
		if cur.Status == c.Status && cur.Reason == c.Reason && cur.Message == c.Message {
			continue
		}
		if cur.Status == c.Status {
			c.LastTransitionTime = cur.LastTransitionTime
		}
		cp.Status.Conditions[i] = c
		changed = true
	}
	if !changed {
		return ns, nil
	}
	written, err := r.Clientset.CoreV1().Namespaces().UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return ns, client.IgnoreNotFound(err)
	}
	return written, nil
}

func describeFailures(groups map[schema.GroupVersion]error) string {
	var parts []string
	for gv, err := range groups {
		parts = append(parts, fmt.Sprintf("%s: %v", gv, err))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// describeRemaining phrases what is left as the stock controller does:
// "pods has 2 resource instances" and "example.com/hold in 1 resource instances".
func describeRemaining(left []remaining) (resources, finalizers string) {
	var rs []string
	fins := map[string]int{}
	for _, l := range left {
		rs = append(rs, fmt.Sprintf("%s has %d resource instances", l.gvr.GroupResource().String(), l.count))
		for f, n := range l.finalizers {
			fins[f] += n
		}
	}
	var fs []string
	for f, n := range fins {
		fs = append(fs, fmt.Sprintf("%s in %d resource instances", f, n))
	}
	sort.Strings(rs)
	sort.Strings(fs)
	return strings.Join(rs, ", "), strings.Join(fs, ", ")
}
