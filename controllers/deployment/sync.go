package deployment

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubeparts/kubeparts/controllers/internal/controllerref"
)

// maxRevisionHistoryChars bounds the revision-history annotation.
const maxRevisionHistoryChars = 2000

// deploymentSync is the state of one sync: the Deployment (updated in place as writes
// return newer versions) and the ReplicaSets it owns.
type deploymentSync struct {
	r      *Reconciler
	d      *appsv1.Deployment
	rsList []*appsv1.ReplicaSet
}

func (s *deploymentSync) desired() int32 { return ptr.Deref(s.d.Spec.Replicas, 1) }

// statusOnly writes the status of a Deployment being deleted, without touching anything.
func (s *deploymentSync) statusOnly(ctx context.Context) error {
	newRS, old, err := s.replicaSets(ctx, false)
	if err != nil {
		return err
	}
	return s.writeStatus(ctx, calculateStatus(s.d, withNew(old, newRS), newRS, s.r.Clock.Now()))
}

// checkPausedConditions records pausing and resuming in the Progressing condition, so
// that a paused rollout never counts as stalled.
func (s *deploymentSync) checkPausedConditions(ctx context.Context) error {
	if !hasProgressDeadline(s.d) {
		return nil
	}
	cur := getCondition(s.d.Status, appsv1.DeploymentProgressing)
	if cur != nil && cur.Reason == ReasonTimedOut {
		return nil // a timed-out rollout stays reported as such
	}
	pausedNoted := cur != nil && cur.Reason == ReasonPaused
	now := s.r.Clock.Now()
	switch {
	case s.d.Spec.Paused && !pausedNoted:
		setCondition(&s.d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonPaused, "Deployment is paused", now))
	case !s.d.Spec.Paused && pausedNoted:
		setCondition(&s.d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonResumed, "Deployment is resumed", now))
	default:
		return nil
	}
	return s.r.updateStatus(ctx, s.d)
}

// sync handles scaling and paused Deployments: resize without rolling anything out.
func (s *deploymentSync) sync(ctx context.Context) error {
	newRS, old, err := s.replicaSets(ctx, false)
	if err != nil {
		return err
	}
	if err := s.scale(ctx, newRS, old); err != nil {
		return err
	}
	if s.d.Spec.Paused {
		if err := s.cleanup(ctx, old); err != nil {
			return err
		}
	}
	return s.writeStatus(ctx, calculateStatus(s.d, withNew(old, newRS), newRS, s.r.Clock.Now()))
}

// isScalingEvent: some active ReplicaSet was sized for another replica count, so
// spec.replicas changed and the next step is proportional scaling, not a rollout step.
func (s *deploymentSync) isScalingEvent(ctx context.Context) (bool, error) {
	newRS, old, err := s.replicaSets(ctx, false)
	if err != nil {
		return false, err
	}
	for _, rs := range activeReplicaSets(withNew(old, newRS)) {
		if desired, ok := intAnnotation(rs, DesiredReplicasAnnotation); ok && desired != s.desired() {
			return true, nil
		}
	}
	return false, nil
}

// syncRolloutStatus writes the status with the Progressing and ReplicaFailure conditions.
func (s *deploymentSync) syncRolloutStatus(ctx context.Context, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	return s.writeStatus(ctx, rolloutStatus(s.d, all, newRS, s.r.Clock.Now()))
}

func (s *deploymentSync) writeStatus(ctx context.Context, st appsv1.DeploymentStatus) error {
	if !statusChanged(s.d, st) {
		return nil
	}
	s.d.Status = st
	return s.r.updateStatus(ctx, s.d)
}

// replicaSets finds the new and old ReplicaSets, brings the new one's revision and
// annotations up to date, and creates it when create is set and none exists.
func (s *deploymentSync) replicaSets(ctx context.Context, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	newRS := findNewReplicaSet(s.d, s.rsList)
	old := findOldReplicaSets(newRS, s.rsList)
	var maxOld int64
	for _, rs := range old {
		maxOld = max(maxOld, revision(rs))
	}
	newRevision := strconv.FormatInt(maxOld+1, 10)
	if newRS != nil {
		updated, err := s.syncNewReplicaSet(ctx, newRS, newRevision)
		return updated, old, err
	}
	if !create {
		return nil, old, nil
	}
	created, err := s.createNewReplicaSet(ctx, old, newRevision)
	return created, old, err
}

// syncNewReplicaSet updates an existing new ReplicaSet's annotations and
// minReadySeconds, and the Deployment's revision.
func (s *deploymentSync) syncNewReplicaSet(ctx context.Context, newRS *appsv1.ReplicaSet, newRevision string) (*appsv1.ReplicaSet, error) {
	rs := newRS.DeepCopy()
	changed := setNewRSAnnotations(s.d, rs, newRevision, true)
	if rs.Spec.MinReadySeconds != s.d.Spec.MinReadySeconds {
		rs.Spec.MinReadySeconds = s.d.Spec.MinReadySeconds
		changed = true
	}
	if changed {
		if err := s.r.Client.Update(ctx, rs); err != nil {
			return nil, err
		}
		*newRS = *rs
		rs = newRS
	}
	needsUpdate := setRevision(s.d, rs.Annotations[RevisionAnnotation])
	if hasProgressDeadline(s.d) && getCondition(s.d.Status, appsv1.DeploymentProgressing) == nil {
		msg := fmt.Sprintf("Found new replica set %q", rs.Name)
		setCondition(&s.d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonFoundNewRS, msg, s.r.Clock.Now()))
		needsUpdate = true
	}
	if needsUpdate {
		// Annotations travel with a status update of a Deployment (the status strategy
		// resets spec and labels only): one write for both, as stock.
		if err := s.r.updateStatus(ctx, s.d); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

func (s *deploymentSync) createNewReplicaSet(ctx context.Context, old []*appsv1.ReplicaSet, newRevision string) (*appsv1.ReplicaSet, error) {
	hash := templateHash(&s.d.Spec.Template, s.d.Status.CollisionCount)
	template := s.d.Spec.Template.DeepCopy()
	if template.Labels == nil {
		template.Labels = map[string]string{}
	}
	template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	selector := s.d.Spec.Selector.DeepCopy()
	if selector.MatchLabels == nil {
		selector.MatchLabels = map[string]string{}
	}
	selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: s.d.Name + "-" + hash, Namespace: s.d.Namespace, Labels: template.Labels,
			OwnerReferences: []metav1.OwnerReference{*controllerref.NewControllerRef(s.d, controllerKind)},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), MinReadySeconds: s.d.Spec.MinReadySeconds, Selector: selector, Template: *template},
	}
	rs.Spec.Replicas = ptr.To(newRSReplicas(s.d, withNew(old, rs), rs))
	setNewRSAnnotations(s.d, rs, newRevision, false)

	err := s.r.Client.Create(ctx, rs)
	alreadyExists := false
	switch {
	case apierrors.IsAlreadyExists(err):
		alreadyExists = true
		existing := &appsv1.ReplicaSet{}
		if getErr := s.r.APIReader.Get(ctx, client.ObjectKeyFromObject(rs), existing); getErr != nil {
			return nil, getErr
		}
		ref := metav1.GetControllerOf(existing)
		if ref != nil && ref.UID == s.d.UID && equalIgnoreHash(&existing.Spec.Template, &s.d.Spec.Template) {
			rs = existing // ours; the cache had not shown it yet
			break
		}
		// A ReplicaSet of that name with another template: bump the collision count so the
		// next attempt hashes to another name.
		s.d.Status.CollisionCount = ptr.To(ptr.Deref(s.d.Status.CollisionCount, 0) + 1)
		if err := s.r.updateStatus(ctx, s.d); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("hash collision for replica set %s; collisionCount is now %d", rs.Name, *s.d.Status.CollisionCount)
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
		if hasProgressDeadline(s.d) {
			setCondition(&s.d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonFailedRSCreate, msg, s.r.Clock.Now()))
			_ = s.r.updateStatus(ctx, s.d)
		}
		s.r.Recorder.Eventf(s.d, nil, corev1.EventTypeWarning, "FailedCreate", "Create", msg)
		return nil, err
	}
	if !alreadyExists && replicas(rs) > 0 {
		s.r.Recorder.Eventf(s.d, rs, corev1.EventTypeNormal, "ScalingReplicaSet", "Scale", "Scaled up replica set %s to %d", rs.Name, replicas(rs))
	}
	s.rsList = append(s.rsList, rs)
	needsUpdate := setRevision(s.d, newRevision)
	if !alreadyExists && hasProgressDeadline(s.d) {
		msg := fmt.Sprintf("Created new replica set %q", rs.Name)
		setCondition(&s.d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSCreated, msg, s.r.Clock.Now()))
		needsUpdate = true
	}
	if needsUpdate {
		if err := s.r.updateStatus(ctx, s.d); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// scale resizes for a changed spec.replicas: the only active ReplicaSet takes it all;
// a saturated new one makes the old ones go; otherwise (mid-rollout) the change is spread
// over the active ReplicaSets in proportion to their size, so no version gains or loses
// share because the user scaled.
func (s *deploymentSync) scale(ctx context.Context, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) error {
	if only := activeOrLatest(newRS, old); only != nil {
		if replicas(only) == s.desired() {
			return nil
		}
		_, err := s.scaleReplicaSet(ctx, only, s.desired())
		return err
	}
	if saturated(s.d, newRS) {
		for _, rs := range activeReplicaSets(old) {
			if _, err := s.scaleReplicaSet(ctx, rs, 0); err != nil {
				return err
			}
		}
		return nil
	}
	if !isRollingUpdate(s.d) {
		return nil
	}
	sizes := proportionalSizes(s.d, activeReplicaSets(withNew(old, newRS)))
	for _, rs := range activeReplicaSets(withNew(old, newRS)) {
		if _, err := s.scaleReplicaSet(ctx, rs, sizes[rs.Name]); err != nil {
			return err
		}
	}
	return nil
}

// proportionalSizes computes each active ReplicaSet's size after a scale: the replicas to
// add (or remove) go to each in proportion to its size relative to the size the
// Deployment had (max-replicas annotation), largest first, and what rounding leaves goes
// to the largest.
func proportionalSizes(d *appsv1.Deployment, active []*appsv1.ReplicaSet) map[string]int32 {
	allowed := int32(0)
	if want := ptr.Deref(d.Spec.Replicas, 1); want > 0 {
		allowed = maxReplicas(d)
	}
	toAdd := allowed - specReplicas(active)
	sorted := append([]*appsv1.ReplicaSet(nil), active...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if replicas(sorted[i]) != replicas(sorted[j]) {
			return replicas(sorted[i]) > replicas(sorted[j])
		}
		// Equal sizes: newer first when growing, older first when shrinking.
		if toAdd > 0 {
			return sorted[j].CreationTimestamp.Before(&sorted[i].CreationTimestamp)
		}
		return sorted[i].CreationTimestamp.Before(&sorted[j].CreationTimestamp)
	})
	sizes := map[string]int32{}
	added := int32(0)
	for _, rs := range sorted {
		share := int32(0)
		if toAdd != 0 {
			share = proportion(rs, d, toAdd, added)
		}
		sizes[rs.Name] = replicas(rs) + share
		added += share
	}
	if toAdd != added && len(sorted) > 0 {
		sizes[sorted[0].Name] = max(sizes[sorted[0].Name]+toAdd-added, 0)
	}
	return sizes
}

func proportion(rs *appsv1.ReplicaSet, d *appsv1.Deployment, toAdd, added int32) int32 {
	if replicas(rs) == 0 || toAdd == added {
		return 0
	}
	var fraction int32
	want := ptr.Deref(d.Spec.Replicas, 1)
	if want == 0 {
		fraction = -replicas(rs)
	} else {
		target := maxReplicas(d)
		annotated, ok := intAnnotation(rs, MaxReplicasAnnotation)
		if !ok || annotated == 0 {
			annotated = d.Status.Replicas
		}
		if annotated == 0 {
			return 0
		}
		fraction = int32(math.Round(float64(replicas(rs))*float64(target)/float64(annotated))) - replicas(rs)
	}
	if left := toAdd - added; toAdd > 0 {
		return min(fraction, left)
	} else {
		return max(fraction, left)
	}
}

// activeOrLatest is the single ReplicaSet that should hold every replica when at most one
// has any: that one, else the new one, else the newest old one.
func activeOrLatest(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	if newRS == nil && len(old) == 0 {
		return nil
	}
	active := activeReplicaSets(withNew(old, newRS))
	switch len(active) {
	case 1:
		return active[0]
	case 0:
		if newRS != nil {
			return newRS
		}
		sorted := append([]*appsv1.ReplicaSet(nil), old...)
		sortByCreation(sorted)
		return sorted[len(sorted)-1]
	}
	return nil
}

// saturated: the new ReplicaSet runs every replica, all available.
func saturated(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	if rs == nil {
		return false
	}
	desired, ok := intAnnotation(rs, DesiredReplicasAnnotation)
	want := ptr.Deref(d.Spec.Replicas, 1)
	return ok && desired == want && replicas(rs) == want && rs.Status.AvailableReplicas == want
}

// scaleReplicaSet sets a ReplicaSet's size and replica annotations; the event is the
// stock ScalingReplicaSet one. rs is updated in place, so every slice holding it sees
// the new version.
func (s *deploymentSync) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, size int32) (bool, error) {
	from := replicas(rs)
	cp := rs.DeepCopy()
	annotationsChanged := setReplicasAnnotations(cp, s.desired(), maxReplicas(s.d))
	if from == size && !annotationsChanged {
		return false, nil
	}
	cp.Spec.Replicas = ptr.To(size)
	if err := s.r.Client.Update(ctx, cp); err != nil {
		return false, err
	}
	*rs = *cp
	if from == size {
		return false, nil
	}
	op := "up"
	if size < from {
		op = "down"
	}
	s.r.Recorder.Eventf(s.d, rs, corev1.EventTypeNormal, "ScalingReplicaSet", "Scale", "Scaled %s replica set %s to %d from %d", op, rs.Name, size, from)
	return true, nil
}

// cleanup deletes the oldest fully scaled-down old ReplicaSets beyond revisionHistoryLimit.
func (s *deploymentSync) cleanup(ctx context.Context, old []*appsv1.ReplicaSet) error {
	if s.d.Spec.RevisionHistoryLimit == nil {
		return nil
	}
	var cleanable []*appsv1.ReplicaSet
	for _, rs := range old {
		if rs.DeletionTimestamp == nil {
			cleanable = append(cleanable, rs)
		}
	}
	excess := len(cleanable) - int(*s.d.Spec.RevisionHistoryLimit)
	if excess <= 0 {
		return nil
	}
	sort.SliceStable(cleanable, func(i, j int) bool {
		if revision(cleanable[i]) != revision(cleanable[j]) {
			return revision(cleanable[i]) < revision(cleanable[j])
		}
		return cleanable[i].CreationTimestamp.Before(&cleanable[j].CreationTimestamp)
	})
	for _, rs := range cleanable[:excess] {
		// Only a ReplicaSet at rest: no pods, and its controller has seen its last change.
		if rs.Status.Replicas != 0 || replicas(rs) != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		err := s.r.Client.Delete(ctx, rs, client.Preconditions{UID: &rs.UID})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// setNewRSAnnotations copies the Deployment's annotations to the ReplicaSet and raises its
// revision to newRevision, keeping the old one in revision-history; a ReplicaSet about to
// be created also gets the replica annotations.
func setNewRSAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet, newRevision string, exists bool) bool {
	changed := false
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	for k, v := range d.Annotations {
		switch k {
		case lastAppliedAnnotation, RevisionAnnotation, RevisionHistoryAnnotation, DesiredReplicasAnnotation, MaxReplicasAnnotation, rollbackToAnnotation:
			continue
		}
		if rs.Annotations[k] != v {
			rs.Annotations[k] = v
			changed = true
		}
	}
	oldRevision := rs.Annotations[RevisionAnnotation]
	oldN, errOld := strconv.ParseInt(oldRevision, 10, 64)
	newN, _ := strconv.ParseInt(newRevision, 10, 64)
	if oldRevision == "" || errOld != nil || oldN < newN {
		rs.Annotations[RevisionAnnotation] = newRevision
		changed = true
		if exists && oldRevision != "" && errOld == nil {
			history := rs.Annotations[RevisionHistoryAnnotation]
			if history == "" {
				history = oldRevision
			} else {
				history += "," + oldRevision
			}
			for len(history) > maxRevisionHistoryChars {
				_, history, _ = strings.Cut(history, ",")
			}
			rs.Annotations[RevisionHistoryAnnotation] = history
		}
	}
	if !exists && setReplicasAnnotations(rs, ptr.Deref(d.Spec.Replicas, 1), maxReplicas(d)) {
		changed = true
	}
	return changed
}

func setReplicasAnnotations(rs *appsv1.ReplicaSet, desired, maxReplicas int32) bool {
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	d, m := strconv.Itoa(int(desired)), strconv.Itoa(int(maxReplicas))
	if rs.Annotations[DesiredReplicasAnnotation] == d && rs.Annotations[MaxReplicasAnnotation] == m {
		return false
	}
	rs.Annotations[DesiredReplicasAnnotation] = d
	rs.Annotations[MaxReplicasAnnotation] = m
	return true
}

func setRevision(d *appsv1.Deployment, rev string) bool {
	if d.Annotations[RevisionAnnotation] == rev {
		return false
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[RevisionAnnotation] = rev
	return true
}

func intAnnotation(rs *appsv1.ReplicaSet, key string) (int32, bool) {
	v, ok := rs.Annotations[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(n), true
}
