package namespace

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
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

// collectionDeleter sends a resource's DELETE of a collection and reads what the
// apiserver answers: the objects it deleted (as metadata), or nil when the answer is
// no such list (a server that answers with a Status).
type collectionDeleter interface {
	deleteCollection(ctx context.Context, gvr schema.GroupVersionResource, ns string, opts metav1.DeleteOptions) (*metav1.PartialObjectMetadataList, error)
}

// restCollectionDeleter is a collectionDeleter on a REST client (the metadata client
// drops the answer).
type restCollectionDeleter struct{ rc rest.Interface }

// newCollectionDeleter builds one on cfg (its rate limiter and identity).
func newCollectionDeleter(cfg *rest.Config) (collectionDeleter, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.GroupVersion = &schema.GroupVersion{}
	cfg.APIPath = "/"
	cfg.NegotiatedSerializer = metainternalversionscheme.Codecs.WithoutConversion()
	cfg.ContentType = runtime.ContentTypeJSON
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return restCollectionDeleter{rc}, nil
}

func (d restCollectionDeleter) deleteCollection(ctx context.Context, gvr schema.GroupVersionResource, ns string, opts metav1.DeleteOptions) (*metav1.PartialObjectMetadataList, error) {
	prefix := []string{"/apis", gvr.Group, gvr.Version}
	if gvr.Group == "" {
		prefix = []string{"/api", gvr.Version}
	}
	opts.TypeMeta = metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "DeleteOptions"}
	body, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	raw, err := d.rc.Delete().AbsPath(append(prefix, "namespaces", ns, gvr.Resource)...).
		SetHeader("Accept", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json").
		SetHeader("Content-Type", runtime.ContentTypeJSON).
		Body(body).Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	var list metav1.PartialObjectMetadataList
	if json.Unmarshal(raw, &list) != nil || list.Kind != "PartialObjectMetadataList" {
		return nil, nil
	}
	return &list, nil
}

// allGone reports whether a collection deletion left nothing behind, from the
// objects it deleted: none of them waits for a finalizer or was already terminating.
// Pods terminate gracefully, so they are always listed again.
func allGone(gvr schema.GroupVersionResource, deleted *metav1.PartialObjectMetadataList) bool {
	if deleted == nil || gvr == podsGVR {
		return false
	}
	for _, item := range deleted.Items {
		if len(item.Finalizers) > 0 || item.DeletionTimestamp != nil {
			return false
		}
	}
	return true
}

// deleteAll deletes every object of r in ns (collection delete when supported) and
// returns what is still there. The list that checks what is left is skipped when the
// collection deletion's own answer shows that nothing can be (allGone): for an empty
// namespace that halves the requests, and deletion is bound by the request budget.
func deleteAll(ctx context.Context, mc metadata.Interface, cd collectionDeleter, ns string, r resource) (remaining, error) {
	res := mc.Resource(r.gvr).Namespace(ns)
	left := remaining{gvr: r.gvr, finalizers: map[string]int{}}
	// Background propagation: dependents are the garbage collector's business, and the
	// namespace will come back to them in its own pass.
	opts := metav1.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationBackground)}
	if r.deleteCollection {
		deleted, err := cd.deleteCollection(ctx, r.gvr, ns, opts)
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
			return left, fmt.Errorf("delete collection of %s: %w", r.gvr, err)
		}
		if err == nil && allGone(r.gvr, deleted) {
			return left, nil
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
