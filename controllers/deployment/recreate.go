package deployment

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// rolloutRecreate takes one Recreate step: scale every old ReplicaSet to zero, wait until
// none of their pods runs any more, then create or grow the new one to spec.replicas.
func (s *deploymentSync) rolloutRecreate(ctx context.Context) error {
	newRS, old, err := s.replicaSets(ctx, false)
	if err != nil {
		return err
	}
	scaledDown := false
	for _, rs := range activeReplicaSets(old) {
		scaled, err := s.scaleReplicaSet(ctx, rs, 0)
		if err != nil {
			return err
		}
		scaledDown = scaledDown || scaled
	}
	if scaledDown {
		return s.syncRolloutStatus(ctx, withNew(old, newRS), newRS)
	}
	running, err := s.oldPodsRunning(ctx, newRS, old)
	if err != nil {
		return err
	}
	if running {
		return s.syncRolloutStatus(ctx, withNew(old, newRS), newRS)
	}
	if newRS == nil {
		if newRS, old, err = s.replicaSets(ctx, true); err != nil {
			return err
		}
	}
	if _, err := s.scaleReplicaSet(ctx, newRS, s.desired()); err != nil {
		return err
	}
	if complete(s.d, &s.d.Status) {
		if err := s.cleanup(ctx, old); err != nil {
			return err
		}
	}
	return s.syncRolloutStatus(ctx, withNew(old, newRS), newRS)
}

// oldPodsRunning: an old ReplicaSet still reports pods, or one of its pods has not
// finished; a pod in phase Unknown (its node unreachable) may still run, so it counts.
func (s *deploymentSync) oldPodsRunning(ctx context.Context, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) (bool, error) {
	if sumStatus(old, func(st *appsv1.ReplicaSetStatus) int32 { return st.Replicas }) > 0 {
		return true, nil
	}
	oldUIDs := map[types.UID]bool{}
	for _, rs := range old {
		oldUIDs[rs.UID] = true
	}
	var pods corev1.PodList
	if err := s.r.Client.List(ctx, &pods, client.InNamespace(s.d.Namespace)); err != nil {
		return false, err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		ref := metav1.GetControllerOf(p)
		if ref == nil || !oldUIDs[ref.UID] || (newRS != nil && ref.UID == newRS.UID) {
			continue
		}
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			return true, nil
		}
	}
	return false, nil
}
