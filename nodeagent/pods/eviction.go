package pods

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/nodeagent/node"
	"github.com/kubeparts/kubeparts/nodeagent/podcri"
)

// Hard eviction as the kubelet's eviction manager does it: every
// evictionInterval, while a signal of --eviction-hard is under its
// threshold, the node's worst pod for that resource is evicted (one per
// round, so the next round sees what that freed): its containers stopped
// with a grace period of one second, its phase Failed with reason Evicted,
// the stock message, a DisruptionTarget condition and an Evicted event.
// Critical pods (static and mirror pods, priority system-cluster-critical
// and above) are never evicted. While under pressure, new pods are turned
// away at admission the same way: BestEffort ones under memory pressure
// (unless they tolerate its taint), all but critical ones under disk pressure.

// PressureSignals observe the node's eviction signals (node.MachinePressure).
type PressureSignals interface {
	Breaches() []node.Breach
}

const (
	evictionInterval = 10 * time.Second
	// Evicted is the pod status reason of evicted and turned-away pods.
	Evicted = "Evicted"
	// The kubelet's threshold for pods it never evicts.
	systemCriticalPriority = 2000000000
	// disruptionTarget is the condition a pod terminated by its kubelet gets.
	disruptionTarget = corev1.DisruptionTarget
	// hardEvictionGrace is the kubelet's grace period for hard evictions.
	hardEvictionGrace = 1
)

// eviction is why a pod is evicted or turned away; kept until its status says so.
type eviction struct {
	reason   string // the status reason and event; "" is Evicted
	message  string
	evicted  bool // true: it ran and was evicted; false: turned away at admission
	recorded bool // the event was emitted
	// deadline: its activeDeadlineSeconds passed; it stops with its own
	// grace period and is not a disruption (no DisruptionTarget).
	deadline bool
}

// Past activeDeadlineSeconds, the kubelet's reason and message.
const (
	deadlineExceeded        = "DeadlineExceeded"
	deadlineExceededMessage = "Pod was active on the node longer than the specified deadline"
)

// activeDeadline is how long the pod may still run under its
// activeDeadlineSeconds, counted from its start time; ok is false when it
// has no deadline (or has not started).
func activeDeadline(pod *corev1.Pod, now time.Time) (left time.Duration, ok bool) {
	if pod.Spec.ActiveDeadlineSeconds == nil || pod.Status.StartTime == nil {
		return 0, false
	}
	return pod.Status.StartTime.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second).Sub(now), true
}

func (m *Manager) evictionOf(uid types.UID) (e eviction, ok bool) {
	m.lookup(uid, func(r *podRecord) {
		if r.eviction != nil {
			e, ok = *r.eviction, true
		}
	})
	return e, ok
}

func (m *Manager) setEviction(uid types.UID, e eviction) {
	m.withRecord(uid, func(r *podRecord) { r.eviction = &e })
}

// evictionRound evicts the pods past their local storage limits, and on
// every node under pressure its worst pod.
func (m *Manager) evictionRound(ctx context.Context) {
	for _, n := range m.nodes {
		if n.Pressure != nil {
			m.evictOverStorage(ctx, n)
			m.evictOne(ctx, n)
		}
	}
}

// evictOne picks the node's worst pod for its first breached signal and
// queues its eviction.
func (m *Manager) evictOne(ctx context.Context, n Node) {
	breaches := n.Pressure.Breaches()
	if len(breaches) == 0 {
		return
	}
	b := breaches[0]
	logger := klog.FromContext(ctx).WithValues("node", n.Name, "signal", b.Signal)
	all, err := m.pods.List(labels.Everything())
	if err != nil {
		return
	}
	var candidates []*corev1.Pod
	for _, p := range all {
		if p.Spec.NodeName != n.Name || p.DeletionTimestamp != nil || isTerminal(p) || isCritical(p) {
			continue
		}
		if _, done := m.evictionOf(p.UID); done {
			continue
		}
		candidates = append(candidates, p)
	}
	if len(candidates) == 0 {
		logger.V(2).Info("Node under pressure, no pod to evict")
		return
	}
	usage, err := podUsage(ctx, n.Runtime)
	if err != nil {
		logger.Error(err, "Reading pod usage for eviction")
		return
	}
	rankForEviction(candidates, b.Resource, usage)
	victim := candidates[0]
	msg := evictionMessage(victim, b, usage[victim.UID])
	logger.Info("Evicting pod", "pod", klog.KObj(victim), "message", msg)
	m.setEviction(victim.UID, eviction{message: msg, evicted: true})
	m.queue.Add(victim.Namespace + "/" + victim.Name)
}

// containerUsage is what the runtime measured of a pod's containers by name.
type containerUsage map[string]corev1.ResourceList

// podUsage reads the memory working set and the writable layer of every
// container, by pod UID.
func podUsage(ctx context.Context, rt interface {
	ListContainerStats(context.Context, *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
}) (map[types.UID]containerUsage, error) {
	stats, err := rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
	if err != nil {
		return nil, err
	}
	out := map[types.UID]containerUsage{}
	for _, s := range stats {
		l := s.GetAttributes().GetLabels()
		uid, name := types.UID(l[labelUID]), l[labelContainer]
		if uid == "" || name == "" {
			continue
		}
		if out[uid] == nil {
			out[uid] = containerUsage{}
		}
		out[uid][name] = corev1.ResourceList{
			corev1.ResourceMemory:           *resource.NewQuantity(int64(s.GetMemory().GetWorkingSetBytes().GetValue()), resource.BinarySI),
			corev1.ResourceEphemeralStorage: *resource.NewQuantity(int64(s.GetWritableLayer().GetUsedBytes().GetValue()), resource.BinarySI),
		}
	}
	return out, nil
}

// rankForEviction orders pods worst first, as the kubelet ranks them for a
// starved resource: pods using more than they requested, then lower
// priority, then the larger use above the request.
func rankForEviction(pods []*corev1.Pod, res corev1.ResourceName, usage map[types.UID]containerUsage) {
	over := func(p *corev1.Pod) int64 {
		used := int64(0)
		for _, u := range usage[p.UID] {
			q := u[res]
			used += q.Value()
		}
		req := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})[res]
		return used - req.Value()
	}
	sort.SliceStable(pods, func(i, j int) bool {
		oi, oj := over(pods[i]), over(pods[j])
		if (oi > 0) != (oj > 0) {
			return oi > 0
		}
		if pi, pj := priority(pods[i]), priority(pods[j]); pi != pj {
			return pi < pj
		}
		return oi > oj
	})
}

func priority(p *corev1.Pod) int32 { return ptr.Deref(p.Spec.Priority, 0) }

// evictionMessage is the kubelet's: the signal, then each container that
// uses more than it requested.
func evictionMessage(p *corev1.Pod, b node.Breach, usage containerUsage) string {
	var msg strings.Builder
	fmt.Fprintf(&msg, "The node was low on resource: %s. Threshold quantity: %s, available: %s. ", b.Resource, b.Threshold.String(), b.Available.String())
	for _, c := range p.Spec.Containers {
		used, ok := usage[c.Name][b.Resource]
		if !ok {
			continue
		}
		req := c.Resources.Requests[b.Resource]
		if used.Cmp(req) > 0 {
			fmt.Fprintf(&msg, "Container %s was using %s, request is %s, has larger consumption of %s. ", c.Name, used.String(), req.String(), b.Resource)
		}
	}
	return msg.String()
}

// admission says why a new pod may not start on the node (the reason and
// message of its Failed status), in the order of the kubelet's admission
// handlers: resource pressure, then podcri.Sysctls; "" admits it.
func admission(node Node, pod *corev1.Pod) (reason, message string) {
	if node.Pressure != nil {
		if msg := admissionRejection(pod, node.Pressure.Breaches()); msg != "" {
			return Evicted, msg
		}
	}
	if msg := node.Sysctls.Rejection(pod); msg != "" {
		return podcri.SysctlForbidden, msg
	}
	return "", ""
}

// admissionRejection says why a new pod may not start on a node under
// pressure; "" admits it.
func admissionRejection(p *corev1.Pod, breaches []node.Breach) string {
	if isCritical(p) {
		return ""
	}
	var conditions []string
	for _, b := range breaches {
		switch b.Resource {
		case corev1.ResourceMemory:
			if qosClass(p) == corev1.PodQOSBestEffort && !tolerates(p, corev1.TaintNodeMemoryPressure) {
				conditions = append(conditions, string(corev1.NodeMemoryPressure))
			}
		case corev1.ResourceEphemeralStorage:
			conditions = append(conditions, string(corev1.NodeDiskPressure))
		}
	}
	if len(conditions) == 0 {
		return ""
	}
	return fmt.Sprintf("The node had condition: [%s]. ", strings.Join(conditions, ", "))
}

func tolerates(p *corev1.Pod, key string) bool {
	taint := &corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule}
	for _, t := range p.Spec.Tolerations {
		if t.ToleratesTaint(klog.Background(), taint, false) {
			return true
		}
	}
	return false
}

// isCritical: static and mirror pods, and priority system-cluster-critical
// or above, are never evicted nor turned away.
func isCritical(p *corev1.Pod) bool {
	return p.Annotations[annotationSource] == "file" || isMirror(p) || priority(p) >= systemCriticalPriority
}

func isTerminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// evictPod stops what runs of an evicted pod (keeping its containers, so
// their last state shows) and writes its Failed status; for a pod turned
// away nothing runs yet.
func (m *Manager) evictPod(ctx context.Context, node Node, pod, apiPod *corev1.Pod, e eviction) error {
	if !e.recorded {
		node.event(pod, corev1.EventTypeWarning, e.statusReason(), "%s", e.message)
		e.recorded = true
		m.setEviction(pod.UID, e)
	}
	var sandbox *runtimeapi.PodSandbox
	if e.evicted {
		m.setPhase(pod.UID, phaseTerminating)
		short := pod
		if !e.deadline {
			short = pod.DeepCopy()
			short.Spec.TerminationGracePeriodSeconds, short.DeletionGracePeriodSeconds = ptr.To[int64](hardEvictionGrace), nil
		}
		if err := m.stopContainers(ctx, node, short, pod.Status.PodIP); err != nil {
			return err
		}
		list, err := node.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{labelUID: string(pod.UID)}})
		if err != nil {
			return err
		}
		for _, sb := range list {
			if err := node.Runtime.StopPodSandbox(ctx, sb.Id); err != nil {
				return err
			}
			if sandbox == nil || sb.CreatedAt > sandbox.CreatedAt {
				sandbox = sb
			}
		}
		if p := m.probes[node.Name]; p != nil {
			p.RemovePod(pod.UID)
		}
	}
	return m.writeStatusWith(ctx, node, pod, sandbox, apiPod, func(st *corev1.PodStatus) { *st = withEviction(*st, e, m.now) })
}

func (e eviction) statusReason() string {
	if e.reason == "" {
		return Evicted
	}
	return e.reason
}

// withEviction turns a computed status into an evicted (or turned-away) pod's.
func withEviction(st corev1.PodStatus, e eviction, now func() time.Time) corev1.PodStatus {
	st.Phase, st.Reason, st.Message = corev1.PodFailed, e.statusReason(), e.message
	if !e.evicted {
		// As the kubelet words a pod its admission refused.
		st.Message = "Pod was rejected: " + e.message
		return st
	}
	if e.deadline {
		return st
	}
	for _, c := range st.Conditions {
		if c.Type == disruptionTarget {
			return st
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: disruptionTarget, Status: corev1.ConditionTrue,
		Reason: "TerminationByKubelet", Message: e.message, LastTransitionTime: metav1.NewTime(now())})
	return st
}
