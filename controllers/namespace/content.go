package namespace

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
)

// resource is one namespaced resource the namespace's content may be of.
type resource struct {
	gvr              schema.GroupVersionResource
	deleteCollection bool
}

// discover lists the namespaced resources that support list and delete, at their
// preferred versions. A partial discovery failure (an aggregated API down) returns what
// was found plus the failed group versions.
func discover(d discovery.DiscoveryInterface) ([]resource, map[schema.GroupVersion]error, error) {
	lists, err := d.ServerPreferredNamespacedResources()
	var failed map[schema.GroupVersion]error
	if err != nil {
		gdf, ok := err.(*discovery.ErrGroupDiscoveryFailed)
		if !ok {
			return nil, nil, err
		}
		failed = gdf.Groups
	}
	var out []resource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") || !slices.Contains(r.Verbs, "delete") {
				continue
			}
			out = append(out, resource{gvr: gv.WithResource(r.Name), deleteCollection: slices.Contains(r.Verbs, "deletecollection")})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].gvr.String() < out[j].gvr.String() })
	return out, failed, nil
}

var podsGVR = corev1.SchemeGroupVersion.WithResource("pods")

// remaining is what is left of one resource after a deletion pass.
type remaining struct {
	gvr        schema.GroupVersionResource
	count      int
	finalizers map[string]int // finalizer -> objects carrying it
	// graceSeconds is the longest grace period among terminating pods, to requeue by.
	graceSeconds int64
}

// deleteAll deletes every object of r in ns (collection delete when supported) and
// returns what is still there.
func deleteAll(ctx context.Context, mc metadata.Interface, ns string, r resource) (remaining, error) {
	res := mc.Resource(r.gvr).Namespace(ns)
	left := remaining{gvr: r.gvr, finalizers: map[string]int{}}
	// Background propagation: dependents are the garbage collector's business, and the
	// namespace will come back to them in its own pass.
	opts := metav1.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationBackground)}
	if r.deleteCollection {
		if err := res.DeleteCollection(ctx, opts, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
			return left, fmt.Errorf("delete collection of %s: %w", r.gvr, err)
		}
	}
	list, err := res.List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
		return left, nil
	}
	if err != nil {
		return left, fmt.Errorf("list %s: %w", r.gvr, err)
	}
	for i := range list.Items {
		item := &list.Items[i]
		if item.DeletionTimestamp == nil {
			err := res.Delete(ctx, item.Name, opts)
			if err != nil && !apierrors.IsNotFound(err) {
				return left, fmt.Errorf("delete %s %s: %w", r.gvr, item.Name, err)
			}
			if apierrors.IsNotFound(err) {
				continue
			}
		}
		left.count++
		for _, f := range item.Finalizers {
			left.finalizers[f]++
		}
		if item.DeletionGracePeriodSeconds != nil {
			left.graceSeconds = max(left.graceSeconds, *item.DeletionGracePeriodSeconds)
		}
	}
	return left, nil
}

func ptrTo[T any](v T) *T { return &v }
