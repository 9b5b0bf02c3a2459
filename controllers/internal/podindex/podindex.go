// Package podindex registers the cache index of pods by node that node-scoped controllers
// share (node lifecycle, taint eviction, later DaemonSet): registered once per manager
// whichever controller comes first.
package podindex

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// NodeName is the index of pods by spec.nodeName.
const NodeName = "spec.nodeName"

// Register adds the index; a second registration by another controller is fine.
func Register(ctx context.Context, indexer client.FieldIndexer) error {
	err := indexer.IndexField(ctx, &corev1.Pod{}, NodeName, func(obj client.Object) []string {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Spec.NodeName == "" {
			return nil
		}
		return []string{p.Spec.NodeName}
	})
	if err != nil && strings.Contains(err.Error(), "conflict") {
		return nil
	}
	return err
}
