// Package ownerindex indexes cached objects by the UID of their controller (the
// ownerReference with controller: true), as the stock controllers index pods and
// ReplicaSets: a controller reads only what it owns and the orphans it may adopt,
// not every object of the namespace (a ReplicaSet of a namespace of 1,000 pods
// would otherwise copy all 1,000 out of the cache on every sync).
package ownerindex

import (
	"context"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Field is the index's name.
const Field = "metadata.ownerReferences.controller"

// Orphan is the index value of objects without a controller.
const Orphan = "<orphan>"

// Register adds the index for objects of obj's type; a second registration (by
// another controller on the same manager) is fine.
func Register(ctx context.Context, indexer client.FieldIndexer, obj client.Object) error {
	err := indexer.IndexField(ctx, obj, Field, func(o client.Object) []string {
		if ref := metav1.GetControllerOf(o); ref != nil {
			return []string{string(ref.UID)}
		}
		return []string{Orphan}
	})
	if err != nil && strings.Contains(err.Error(), "conflict") {
		return nil
	}
	return err
}

// OwnedOrOrphan lists into list the objects of namespace ns that the controller
// with UID uid owns, then the orphans.
func OwnedOrOrphan(ctx context.Context, c client.Reader, ns string, uid string, owned, orphans client.ObjectList) error {
	if err := c.List(ctx, owned, client.InNamespace(ns), client.MatchingFields{Field: uid}); err != nil {
		return err
	}
	return c.List(ctx, orphans, client.InNamespace(ns), client.MatchingFields{Field: Orphan})
}
