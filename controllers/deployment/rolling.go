package deployment

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"
)

// rolloutRolling takes one RollingUpdate step: grow the new ReplicaSet within maxSurge,
// else shrink old ones within maxUnavailable, then clean up and report.
func (s *deploymentSync) rolloutRolling(ctx context.Context) error {
	newRS, old, err := s.replicaSets(ctx, true)
	if err != nil {
		return err
	}
	all := withNew(old, newRS)
	scaledUp, err := s.reconcileNewReplicaSet(ctx, all, newRS)
	if err != nil {
		return err
	}
	if scaledUp {
		return s.syncRolloutStatus(ctx, all, newRS)
	}
	scaledDown, err := s.reconcileOldReplicaSets(ctx, all, activeReplicaSets(old), newRS)
	if err != nil {
		return err
	}
	if scaledDown {
		return s.syncRolloutStatus(ctx, all, newRS)
	}
	if complete(s.d, &s.d.Status) {
		if err := s.cleanup(ctx, old); err != nil {
			return err
		}
	}
	return s.syncRolloutStatus(ctx, all, newRS)
}

func (s *deploymentSync) reconcileNewReplicaSet(ctx context.Context, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	switch want := s.desired(); {
	case replicas(newRS) == want:
		return false, nil
	case replicas(newRS) > want:
		return s.scaleReplicaSet(ctx, newRS, want)
	}
	return s.scaleReplicaSet(ctx, newRS, newRSReplicas(s.d, all, newRS))
}

// newRSReplicas is the size the new ReplicaSet may grow to now: for RollingUpdate up to
// spec.replicas+maxSurge pods in all, for Recreate spec.replicas at once.
func newRSReplicas(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	want := ptr.Deref(d.Spec.Replicas, 1)
	if !isRollingUpdate(d) {
		return want
	}
	current := specReplicas(all)
	maxTotal := maxReplicas(d)
	if current >= maxTotal {
		return replicas(newRS)
	}
	return replicas(newRS) + min(maxTotal-current, want-replicas(newRS))
}

// reconcileOldReplicaSets shrinks old ReplicaSets as far as maxUnavailable allows,
// unhealthy replicas first (they do not count as available anyway).
func (s *deploymentSync) reconcileOldReplicaSets(ctx context.Context, all, old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	if specReplicas(old) == 0 {
		return false, nil
	}
	minAvailable := s.desired() - maxUnavailable(s.d)
	newUnavailable := replicas(newRS) - statusAvailable(newRS)
	maxScaledDown := specReplicas(all) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return false, nil
	}
	cleaned, err := s.cleanupUnhealthyReplicas(ctx, old, maxScaledDown)
	if err != nil {
		return false, err
	}
	scaled, err := s.scaleDownOldForRollingUpdate(ctx, withNew(old, newRS), old)
	if err != nil {
		return false, err
	}
	return cleaned+scaled > 0, nil
}

// cleanupUnhealthyReplicas removes not-available replicas of old ReplicaSets, oldest
// ReplicaSet first, at most maxCleanup in all.
func (s *deploymentSync) cleanupUnhealthyReplicas(ctx context.Context, old []*appsv1.ReplicaSet, maxCleanup int32) (int32, error) {
	sorted := append([]*appsv1.ReplicaSet(nil), old...)
	sortByCreation(sorted)
	var total int32
	for _, rs := range sorted {
		if total >= maxCleanup {
			break
		}
		if replicas(rs) == 0 || rs.Status.AvailableReplicas >= replicas(rs) {
			continue
		}
		n := min(maxCleanup-total, replicas(rs)-rs.Status.AvailableReplicas)
		if _, err := s.scaleReplicaSet(ctx, rs, replicas(rs)-n); err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// scaleDownOldForRollingUpdate removes available old replicas down to minAvailable,
// oldest ReplicaSet first.
func (s *deploymentSync) scaleDownOldForRollingUpdate(ctx context.Context, all, old []*appsv1.ReplicaSet) (int32, error) {
	minAvailable := s.desired() - maxUnavailable(s.d)
	available := sumStatus(all, func(st *appsv1.ReplicaSetStatus) int32 { return st.AvailableReplicas })
	if available <= minAvailable {
		return 0, nil
	}
	budget := available - minAvailable
	sorted := append([]*appsv1.ReplicaSet(nil), old...)
	sortByCreation(sorted)
	var total int32
	for _, rs := range sorted {
		if total >= budget {
			break
		}
		if replicas(rs) == 0 {
			continue
		}
		n := min(replicas(rs), budget-total)
		if _, err := s.scaleReplicaSet(ctx, rs, replicas(rs)-n); err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func statusAvailable(rs *appsv1.ReplicaSet) int32 {
	if rs == nil {
		return 0
	}
	return rs.Status.AvailableReplicas
}
