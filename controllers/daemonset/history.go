package daemonset

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubeparts/kubeparts/controllers/internal/controllerref"
)

// revisionData is what a ControllerRevision of a DaemonSet holds: the template as a
// strategic-merge patch that replaces it, which is what `kubectl rollout undo` applies.
func revisionData(ds *appsv1.DaemonSet) ([]byte, error) {
	tmpl, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&ds.Spec.Template)
	if err != nil {
		return nil, err
	}
	tmpl["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl}})
}

// revisionHash names a revision: FNV-32a of its data and the collision count.
func revisionHash(data []byte, collisionCount *int32) string {
	h := fnv.New32a()
	_, _ = h.Write(data)
	if collisionCount != nil {
		_, _ = h.Write([]byte(strconv.Itoa(int(*collisionCount))))
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// currentRevision finds or creates the ControllerRevision of the DaemonSet's template,
// gives it the highest revision number, and returns it with the old ones.
func (r *Reconciler) currentRevision(ctx context.Context, ds *appsv1.DaemonSet, history []*appsv1.ControllerRevision) (*appsv1.ControllerRevision, []*appsv1.ControllerRevision, error) {
	data, err := revisionData(ds)
	if err != nil {
		return nil, nil, err
	}
	var maxRev int64
	var cur *appsv1.ControllerRevision
	var old []*appsv1.ControllerRevision
	for _, h := range history {
		maxRev = max(maxRev, h.Revision)
		if cur == nil && string(h.Data.Raw) == string(data) {
			cur = h
			continue
		}
		old = append(old, h)
	}
	if cur != nil {
		if cur.Revision < maxRev {
			// A rollback to this template: it becomes the newest revision again.
			cp := cur.DeepCopy()
			cp.Revision = maxRev + 1
			if err := r.Client.Update(ctx, cp); err != nil {
				return nil, nil, err
			}
			cur = cp
		}
		return cur, old, nil
	}
	hash := revisionHash(data, ds.Status.CollisionCount)
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name: ds.Name + "-" + hash, Namespace: ds.Namespace,
			Labels:          mergeLabels(ds.Spec.Template.Labels, map[string]string{appsv1.DefaultDaemonSetUniqueLabelKey: hash}),
			OwnerReferences: []metav1.OwnerReference{*controllerref.NewControllerRef(ds, controllerKind)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: maxRev + 1,
	}
	err = r.Client.Create(ctx, cr)
	if apierrors.IsAlreadyExists(err) {
		existing := &appsv1.ControllerRevision{}
		if getErr := r.APIReader.Get(ctx, client.ObjectKeyFromObject(cr), existing); getErr != nil {
			return nil, nil, getErr
		}
		if ref := metav1.GetControllerOf(existing); ref != nil && ref.UID == ds.UID && string(existing.Data.Raw) == string(data) {
			return existing, old, nil // ours, not yet in the cache
		}
		ds.Status.CollisionCount = ptr.To(ptr.Deref(ds.Status.CollisionCount, 0) + 1)
		if err := r.Client.Status().Update(ctx, ds); err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("hash collision for ControllerRevision %s; collisionCount is now %d", cr.Name, *ds.Status.CollisionCount)
	}
	if err != nil {
		return nil, nil, err
	}
	return cr, old, nil
}

// cleanupHistory deletes the oldest revisions beyond revisionHistoryLimit that no pod
// uses any more.
func (r *Reconciler) cleanupHistory(ctx context.Context, ds *appsv1.DaemonSet, old []*appsv1.ControllerRevision, inUse map[string]bool) error {
	limit := int(ptr.Deref(ds.Spec.RevisionHistoryLimit, 10))
	var candidates []*appsv1.ControllerRevision
	for _, h := range old {
		if !inUse[h.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]] {
			candidates = append(candidates, h)
		}
	}
	excess := len(candidates) - limit
	if excess <= 0 {
		return nil
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].Revision < candidates[j].Revision })
	for _, h := range candidates[:excess] {
		if err := r.Client.Delete(ctx, h); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

func mergeLabels(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
