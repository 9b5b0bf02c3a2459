// Package controllerref decides which pods a workload controller owns through the
// ControllerRef (the ownerReference with controller=true): it adopts matching orphans,
// releases owned pods whose labels stop matching and leaves alone pods that another
// controller owns. Adoption re-checks the owner with a live read first, so a stale cache
// never lets an owner that is being deleted (or was replaced by a namesake) take pods.
package controllerref

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Owner is the controller object claiming pods.
type Owner interface {
	client.Object
}

// Claimer claims pods for one owner during one sync.
type Claimer struct {
	Client   client.Client
	Owner    Owner
	OwnerGVK metav1.GroupVersionKind
	Selector labels.Selector
	// Recheck reads the owner live (not from the cache) and fails when it is gone, is
	// being deleted or has another UID; it runs at most once per Claimer.
	Recheck    func(ctx context.Context) error
	rechecked  bool
	recheckErr error
}

// ClaimPods returns the pods the owner owns after adopting and releasing; pods must be
// the candidates (active pods of the owner's namespace).
func (c *Claimer) ClaimPods(ctx context.Context, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	return Claim(ctx, c, pods)
}

// Claim is ClaimPods for any kind of owned object (ReplicaSets of a Deployment, say).
func Claim[T client.Object](ctx context.Context, c *Claimer, objs []T) ([]T, error) {
	var claimed []T
	var errs []error
	for _, obj := range objs {
		ok, err := c.claim(ctx, obj)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			claimed = append(claimed, obj)
		}
	}
	if len(errs) > 0 {
		return claimed, fmt.Errorf("claiming: %v", errs)
	}
	return claimed, nil
}

func (c *Claimer) claim(ctx context.Context, obj client.Object) (bool, error) {
	matches := c.Selector.Matches(labels.Set(obj.GetLabels()))
	if ref := metav1.GetControllerOf(obj); ref != nil {
		if ref.UID != c.Owner.GetUID() {
			return false, nil // another controller's pod
		}
		if matches {
			return true, nil
		}
		// Owned but no longer selected: let it go, unless the owner is going away (the
		// garbage collector will take its pods).
		if c.Owner.GetDeletionTimestamp() != nil {
			return false, nil
		}
		err := c.patch(ctx, obj, releasePatch(c.Owner.GetUID(), obj.GetUID()))
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || apierrors.IsInvalid(err) {
			return false, nil // gone, or changed under us: the next sync sees the truth
		}
		return false, err
	}
	if !matches || obj.GetDeletionTimestamp() != nil || c.Owner.GetDeletionTimestamp() != nil {
		return false, nil
	}
	if !c.rechecked {
		c.rechecked = true
		if c.Recheck != nil {
			c.recheckErr = c.Recheck(ctx)
		}
	}
	if c.recheckErr != nil {
		return false, nil // do not adopt for an owner we cannot confirm
	}
	err := c.patch(ctx, obj, adoptPatch(c.OwnerGVK, c.Owner, obj.GetUID()))
	if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

func (c *Claimer) patch(ctx context.Context, obj client.Object, data []byte) error {
	return c.Client.Patch(ctx, obj, client.RawPatch(types.StrategicMergePatchType, data))
}

// adoptPatch adds the ControllerRef; metadata.uid makes the patch fail (Invalid) if the
// pod was replaced by a namesake since we read it.
func adoptPatch(gvk metav1.GroupVersionKind, owner Owner, podUID types.UID) []byte {
	ref := map[string]any{
		"apiVersion": metav1.GroupVersion{Group: gvk.Group, Version: gvk.Version}.String(), "kind": gvk.Kind,
		"name": owner.GetName(), "uid": owner.GetUID(), "controller": true, "blockOwnerDeletion": true,
	}
	data, _ := json.Marshal(map[string]any{"metadata": map[string]any{"ownerReferences": []any{ref}, "uid": podUID}})
	return data
}

// releasePatch removes the owner's reference, by UID.
func releasePatch(ownerUID, podUID types.UID) []byte {
	data, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []any{map[string]any{"$patch": "delete", "uid": ownerUID}}, "uid": podUID,
	}})
	return data
}

// NewControllerRef is the ownerReference a controller puts on pods it creates.
func NewControllerRef(owner Owner, gvk metav1.GroupVersionKind) *metav1.OwnerReference {
	return &metav1.OwnerReference{
		APIVersion: metav1.GroupVersion{Group: gvk.Group, Version: gvk.Version}.String(), Kind: gvk.Kind,
		Name: owner.GetName(), UID: owner.GetUID(), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
}
