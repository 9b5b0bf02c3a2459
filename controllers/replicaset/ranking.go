package replicaset

import (
	"math"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// PodDeletionCostAnnotation lets users say which pods of a ReplicaSet go first on scale
// down: lower cost first (KEP-2255).
const PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// podsToDelete picks the n pods a scale-down removes, in the order the stock controller
// documents: unscheduled before scheduled; Pending before Unknown before Running; not
// ready before ready; lower pod-deletion-cost first; pods doubled up on a node (counting
// related pods, e.g. of sibling ReplicaSets) before lonely ones; ready more recently before
// ready longer; more container restarts first; newer before older. Times are compared on
// a logarithmic scale relative to now, so that pods of similar age are treated alike and
// ties fall back to the UID rather than to a few milliseconds.
func podsToDelete(pods, related []*corev1.Pod, n int, now time.Time) []*corev1.Pod {
	if n <= 0 {
		return nil
	}
	if n >= len(pods) {
		return pods
	}
	perNode := map[string]int{}
	for _, p := range related {
		if p.Spec.NodeName != "" && isActive(p) {
			perNode[p.Spec.NodeName]++
		}
	}
	ranked := make([]rankedPod, len(pods))
	for i, p := range pods {
		ranked[i] = rankedPod{pod: p, doubledUp: perNode[p.Spec.NodeName], cost: deletionCost(p), ready: podReady(p), readySince: readySince(p), restarts: maxRestarts(p)}
	}
	sort.SliceStable(ranked, func(i, j int) bool { return deleteBefore(ranked[i], ranked[j], now) })
	out := make([]*corev1.Pod, n)
	for i := range out {
		out[i] = ranked[i].pod
	}
	return out
}

type rankedPod struct {
	pod        *corev1.Pod
	doubledUp  int
	cost       int64
	ready      bool
	readySince time.Time
	restarts   int32
}

var phaseOrder = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

func deleteBefore(a, b rankedPod, now time.Time) bool {
	if (a.pod.Spec.NodeName == "") != (b.pod.Spec.NodeName == "") {
		return a.pod.Spec.NodeName == ""
	}
	if pa, pb := phaseOrder[a.pod.Status.Phase], phaseOrder[b.pod.Status.Phase]; pa != pb {
		return pa < pb
	}
	if a.ready != b.ready {
		return !a.ready
	}
	if a.cost != b.cost {
		return a.cost < b.cost
	}
	if a.doubledUp != b.doubledUp {
		return a.doubledUp > b.doubledUp
	}
	if a.ready && b.ready && !a.readySince.Equal(b.readySince) {
		if d := newerOnLogScale(a.readySince, b.readySince, now); d != 0 {
			return d < 0
		}
		return a.pod.UID < b.pod.UID
	}
	if a.restarts != b.restarts {
		return a.restarts > b.restarts
	}
	ca, cb := a.pod.CreationTimestamp.Time, b.pod.CreationTimestamp.Time
	if !ca.Equal(cb) {
		if d := newerOnLogScale(ca, cb, now); d != 0 {
			return d < 0
		}
		return a.pod.UID < b.pod.UID
	}
	return false
}

// newerOnLogScale compares two times by the power-of-two bucket of their age in seconds:
// -1 when a is in a newer bucket, 1 when older, 0 in the same bucket. A zero time counts
// as newest (it has not happened yet).
func newerOnLogScale(a, b, now time.Time) int {
	bucket := func(t time.Time) int {
		if t.IsZero() {
			return -1
		}
		age := now.Sub(t).Seconds()
		if age < 1 {
			return 0
		}
		return int(math.Floor(math.Log2(age))) + 1
	}
	switch ba, bb := bucket(a), bucket(b); {
	case ba < bb:
		return -1
	case ba > bb:
		return 1
	}
	return 0
}

func deletionCost(p *corev1.Pod) int64 {
	v, ok := p.Annotations[PodDeletionCostAnnotation]
	if !ok {
		return 0
	}
	// The apiserver validates the annotation as an int32; anything else counts as 0.
	cost, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return cost
}

func maxRestarts(p *corev1.Pod) int32 {
	var m int32
	for _, s := range p.Status.ContainerStatuses {
		m = max(m, s.RestartCount)
	}
	return m
}

func podReady(p *corev1.Pod) bool {
	c := readyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

func readySince(p *corev1.Pod) time.Time {
	if c := readyCondition(p); c != nil && c.Status == corev1.ConditionTrue {
		return c.LastTransitionTime.Time
	}
	return time.Time{}
}

func readyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// isActive: a pod counts toward replicas until it has terminated or is being deleted.
func isActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}
