package deployment

import (
	"encoding/json"
	"hash/fnv"
	"math"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
)

// Annotations the stock controller maintains, read by kubectl rollout.
const (
	RevisionAnnotation        = "deployment.kubernetes.io/revision"
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	MaxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	lastAppliedAnnotation     = "kubectl.kubernetes.io/last-applied-configuration"
	rollbackToAnnotation      = "deprecated.deployment.rollback.to"
)

// templateHash names a new ReplicaSet: FNV-32a of the template (without the hash label)
// and the collision count, in the apimachinery safe alphabet. It is kubeparts' own hash,
// so names may differ from the stock controller's for the same template; nothing depends
// on that, because the current ReplicaSet is found by template equality.
func templateHash(template *corev1.PodTemplateSpec, collisionCount *int32) string {
	t := template.DeepCopy()
	delete(t.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	data, _ := json.Marshal(t)
	h := fnv.New32a()
	_, _ = h.Write(data)
	if collisionCount != nil {
		_, _ = h.Write([]byte(strconv.Itoa(int(*collisionCount))))
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// TemplateHash is exported for tests that provoke a name collision.
func TemplateHash(template *corev1.PodTemplateSpec, collisionCount *int32) string {
	return templateHash(template, collisionCount)
}

// equalIgnoreHash compares two pod templates, ignoring the pod-template-hash label.
func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	delete(b.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(b.Labels) == 0 {
		b.Labels = nil
	}
	return apiequality.Semantic.DeepEqual(a, b)
}

// findNewReplicaSet is the oldest ReplicaSet whose template equals the Deployment's: if
// a bug ever made two, the oldest keeps its pods and the others are old.
func findNewReplicaSet(d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	sorted := append([]*appsv1.ReplicaSet(nil), rsList...)
	sortByCreation(sorted)
	for _, rs := range sorted {
		if equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			return rs
		}
	}
	return nil
}

func findOldReplicaSets(newRS *appsv1.ReplicaSet, rsList []*appsv1.ReplicaSet) (old []*appsv1.ReplicaSet) {
	for _, rs := range rsList {
		if newRS == nil || rs.UID != newRS.UID {
			old = append(old, rs)
		}
	}
	return old
}

// sortByCreation sorts oldest first, names breaking ties.
func sortByCreation(rss []*appsv1.ReplicaSet) {
	sort.SliceStable(rss, func(i, j int) bool {
		if rss[i].CreationTimestamp.Equal(&rss[j].CreationTimestamp) {
			return rss[i].Name < rss[j].Name
		}
		return rss[i].CreationTimestamp.Before(&rss[j].CreationTimestamp)
	})
}

func revision(rs *appsv1.ReplicaSet) int64 {
	v, err := strconv.ParseInt(rs.Annotations[RevisionAnnotation], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

func replicas(rs *appsv1.ReplicaSet) int32 {
	if rs == nil {
		return 0
	}
	return ptr.Deref(rs.Spec.Replicas, 0)
}

// specReplicas sums spec.replicas; statusReplicas, readyReplicas and availableReplicas
// sum the status fields.
func specReplicas(rss []*appsv1.ReplicaSet) int32 {
	var n int64
	for _, rs := range rss {
		n += int64(replicas(rs))
	}
	return int32(min(n, math.MaxInt32))
}

func sumStatus(rss []*appsv1.ReplicaSet, f func(*appsv1.ReplicaSetStatus) int32) (n int32) {
	for _, rs := range rss {
		if rs != nil {
			n += f(&rs.Status)
		}
	}
	return n
}

func activeReplicaSets(rss []*appsv1.ReplicaSet) (out []*appsv1.ReplicaSet) {
	for _, rs := range rss {
		if replicas(rs) > 0 {
			out = append(out, rs)
		}
	}
	return out
}

func withNew(old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	all := append([]*appsv1.ReplicaSet(nil), old...)
	if newRS != nil {
		all = append(all, newRS)
	}
	return all
}

func isRollingUpdate(d *appsv1.Deployment) bool {
	return d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType
}

// fenceposts resolves maxSurge (rounded up) and maxUnavailable (rounded down) against
// the desired replicas; when both come out 0, maxUnavailable is 1 so a rollout can move.
func fenceposts(d *appsv1.Deployment) (surge, unavailable int32) {
	desired := int(ptr.Deref(d.Spec.Replicas, 1))
	ru := d.Spec.Strategy.RollingUpdate
	def := intstr.FromString("25%")
	maxSurge, maxUnavailable := &def, &def
	if ru != nil {
		if ru.MaxSurge != nil {
			maxSurge = ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			maxUnavailable = ru.MaxUnavailable
		}
	}
	s, err := intstr.GetScaledValueFromIntOrPercent(maxSurge, desired, true)
	if err != nil {
		s = 0
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(maxUnavailable, desired, false)
	if err != nil {
		u = 0
	}
	if s == 0 && u == 0 {
		u = 1
	}
	return int32(s), int32(u)
}

func maxSurge(d *appsv1.Deployment) int32 {
	if !isRollingUpdate(d) {
		return 0
	}
	s, _ := fenceposts(d)
	return s
}

func maxUnavailable(d *appsv1.Deployment) int32 {
	want := ptr.Deref(d.Spec.Replicas, 1)
	if !isRollingUpdate(d) || want == 0 {
		return 0
	}
	_, u := fenceposts(d)
	return min(u, want)
}

// maxReplicas is spec.replicas plus maxSurge, clamped to the int32 range: a Deployment
// near the maximum replica count must not overflow into a negative budget.
func maxReplicas(d *appsv1.Deployment) int32 {
	total := int64(ptr.Deref(d.Spec.Replicas, 1)) + int64(maxSurge(d))
	return int32(min(total, math.MaxInt32))
}
