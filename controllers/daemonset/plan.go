package daemonset

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// plan is one sync's decisions and the counts the status is made of.
type plan struct {
	create       []string // nodes to create a pod for
	remove       []*corev1.Pod
	failedOn     []string // nodes whose failed pod is being replaced
	desired      int32
	current      int32
	misscheduled int32
	ready        int32
	available    int32
	updated      int32
	recheckAfter time.Duration
}

// planFor decides, node by node, what to create and delete: a pod where one should run
// and none does, none where none may run, a single pod per node, then the rolling
// update's replacements within maxSurge/maxUnavailable.
func planFor(ds *appsv1.DaemonSet, nodes []corev1.Node, podsByNode map[string][]*corev1.Pod, hash string, now time.Time) *plan {
	p := &plan{}
	rolling := ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType
	type nodeState struct {
		name     string
		old, new *corev1.Pod // the node's pod of an old and of the current revision
	}
	var states []nodeState
	known := map[string]bool{}
	for i := range nodes {
		node := &nodes[i]
		known[node.Name] = true
		shouldRun, shouldContinue := placement(ds, node)
		var live []*corev1.Pod
		failed := false
		for _, pod := range podsByNode[node.Name] {
			if pod.Status.Phase == corev1.PodFailed {
				p.remove = append(p.remove, pod) // a failed daemon is replaced (the caller backs off)
				p.failedOn = append(p.failedOn, node.Name)
				failed = true
				continue
			}
			live = append(live, pod)
		}
		if !shouldContinue {
			p.remove = append(p.remove, live...)
			if len(live) > 0 {
				p.misscheduled++
			}
			continue
		}
		if !shouldRun {
			// Kept (only NoExecute evicts a daemon) but not where it would be placed now:
			// counted as misscheduled, as stock does, and left out of rollouts.
			if len(live) > 0 {
				p.misscheduled++
			}
			continue
		}
		p.desired++
		st := nodeState{name: node.Name}
		for _, pod := range live { // oldest first
			isNew := pod.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash
			switch {
			case isNew && st.new == nil:
				st.new = pod
			case !isNew && st.old == nil:
				st.old = pod
			default:
				p.remove = append(p.remove, pod) // one pod per node (one of each while surging)
			}
		}
		if !rolling && st.new != nil && st.old != nil {
			p.remove = append(p.remove, st.new) // OnDelete: keep what runs
			st.new = nil
		}
		if st.old == nil && st.new == nil {
			// A failed pod is replaced once it is gone: the next sync creates.
			if shouldRun && !failed {
				p.create = append(p.create, node.Name)
			}
			continue
		}
		states = append(states, st)
	}
	for node, pods := range podsByNode {
		if !known[node] {
			p.remove = append(p.remove, pods...) // the node is gone
		}
	}

	avail := func(pod *corev1.Pod) bool { return pod != nil && available(pod, ds.Spec.MinReadySeconds, now) }
	// Counts as the stock controller keeps them, per node, judged on the pod that counts:
	// the current one if any.
	for _, st := range states {
		pod := st.new
		if pod == nil {
			pod = st.old
		}
		p.current++
		if ready(pod) {
			p.ready++
		}
		if avail(pod) {
			p.available++
		} else if wait := untilAvailable(pod, ds.Spec.MinReadySeconds, now); wait > 0 && (p.recheckAfter == 0 || wait < p.recheckAfter) {
			p.recheckAfter = wait
		}
		if st.new != nil {
			p.updated++
		}
	}
	if !rolling {
		return p
	}
	// Rolling update; percentages are of the nodes that should run a daemon.
	surge, unavailable := fenceposts(ds, int(p.desired))
	numUnavailable := p.desired - p.available
	surging := int32(0)
	for _, st := range states {
		if st.old != nil && st.new != nil {
			surging++
		}
	}
	for _, st := range states {
		switch {
		case st.old == nil:
		case st.new != nil && avail(st.new):
			p.remove = append(p.remove, st.old) // surge done on this node
		case st.new != nil:
			// waiting for the surge pod
		case surge > 0 && !avail(st.old):
			p.create = append(p.create, st.name) // surging over an unavailable pod is free
		case !avail(st.old):
			p.remove = append(p.remove, st.old) // replacing it costs no availability
		case surge > 0 && surging < surge:
			p.create = append(p.create, st.name)
			surging++
		case surge == 0 && numUnavailable < unavailable:
			p.remove = append(p.remove, st.old)
			numUnavailable++
		}
	}
	return p
}

func (p *plan) status(ds *appsv1.DaemonSet) appsv1.DaemonSetStatus {
	return appsv1.DaemonSetStatus{
		CurrentNumberScheduled: p.current,
		NumberMisscheduled:     p.misscheduled,
		DesiredNumberScheduled: p.desired,
		NumberReady:            p.ready,
		ObservedGeneration:     ds.Generation,
		UpdatedNumberScheduled: p.updated,
		NumberAvailable:        p.available,
		NumberUnavailable:      max(p.desired-p.available, 0),
		CollisionCount:         ds.Status.CollisionCount,
		Conditions:             ds.Status.Conditions,
	}
}

// fenceposts resolves maxSurge and maxUnavailable against the desired number of daemons;
// both round up for a DaemonSet, and both zero makes maxUnavailable 1.
func fenceposts(ds *appsv1.DaemonSet, total int) (surge, unavailable int32) {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	maxU, maxS := &one, &zero
	if ru != nil {
		if ru.MaxUnavailable != nil {
			maxU = ru.MaxUnavailable
		}
		if ru.MaxSurge != nil {
			maxS = ru.MaxSurge
		}
	}
	s, _ := intstr.GetScaledValueFromIntOrPercent(maxS, total, true)
	u, _ := intstr.GetScaledValueFromIntOrPercent(maxU, total, true)
	if s == 0 && u == 0 {
		u = 1
	}
	return int32(s), int32(u)
}

func ready(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func readySince(pod *corev1.Pod) time.Time {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

func available(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	since := readySince(pod)
	return !since.IsZero() && !since.Add(time.Duration(minReadySeconds)*time.Second).After(now)
}

func untilAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) time.Duration {
	since := readySince(pod)
	if since.IsZero() {
		return 0
	}
	return since.Add(time.Duration(minReadySeconds) * time.Second).Sub(now)
}
