package podcri

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ComputeStatus is the pod status the runtime's state implies: a pure
// function of its inputs, so it is table-tested and a write happens only
// when its result differs from what the API holds. Transition times of
// conditions whose status did not change are kept, as the kubelet does.
func ComputeStatus(pod *corev1.Pod, hostIP, runtimeName string, sb *runtimeapi.PodSandboxStatus, containers map[string][]*runtimeapi.ContainerStatus, waiting map[string]corev1.ContainerStateWaiting, messages map[string]string, probed map[string]ProbeState, now metav1.Time) corev1.PodStatus {
	st := corev1.PodStatus{QOSClass: pod.Status.QOSClass, StartTime: pod.Status.StartTime}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	sandboxReady := sb != nil && sb.State == runtimeapi.PodSandboxState_SANDBOX_READY
	// A host-network pod has the node's address, as the kubelet reports it.
	ips := WithNodeIPs(&corev1.Pod{Spec: corev1.PodSpec{HostNetwork: pod.Spec.HostNetwork}}, hostIP, sb)
	if !sandboxReady { // no address before the sandbox runs
		ips.Status.PodIP, ips.Status.PodIPs = "", nil
	}
	st.HostIP, st.HostIPs, st.PodIP, st.PodIPs = ips.Status.HostIP, ips.Status.HostIPs, ips.Status.PodIP, ips.Status.PodIPs

	// While a pod has init containers, those that have not run yet wait
	// PodInitializing rather than ContainerCreating, as the kubelet shows them.
	created := "ContainerCreating"
	if len(pod.Spec.InitContainers) > 0 {
		created = "PodInitializing"
	}
	initialized, initFailed := true, false
	var incomplete, unready []string // names, for the conditions' messages
	for _, c := range pod.Spec.InitContainers {
		cs := containerStatus(c, runtimeName, containers[c.Name], waiting[c.Name], messages, probed, created)
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		done := cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
		if sidecar {
			done = cs.State.Running != nil && *cs.Started // past its startup probe
		} else {
			// A completed init container is ready; one that failed fails
			// the pod when nothing restarts it.
			cs.Ready = done
			initFailed = initFailed || (cs.State.Terminated != nil && !done && pod.Spec.RestartPolicy == corev1.RestartPolicyNever)
		}
		initialized = initialized && done
		if !done {
			incomplete = append(incomplete, c.Name)
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	allReady, running, failed, succeeded := true, 0, 0, 0
	for _, c := range pod.Spec.Containers {
		cs := containerStatus(c, runtimeName, containers[c.Name], waiting[c.Name], messages, probed, created)
		allReady = allReady && cs.Ready
		if !cs.Ready {
			unready = append(unready, c.Name)
		}
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			running++ // crash-looping: the pod stays Running, as with the kubelet
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			succeeded++
		case cs.State.Terminated != nil:
			failed++
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	for _, ec := range pod.Spec.EphemeralContainers {
		cs := containerStatus(corev1.Container(ec.EphemeralContainerCommon), runtimeName, containers[ec.Name], waiting[ec.Name], messages, probed, "ContainerCreating")
		cs.Ready = false // ephemeral containers take no part in readiness
		st.EphemeralContainerStatuses = append(st.EphemeralContainerStatuses, cs)
	}
	n := len(pod.Spec.Containers)
	switch {
	case initFailed:
		st.Phase = corev1.PodFailed
	case running > 0 || (succeeded+failed == n && pod.Spec.RestartPolicy == corev1.RestartPolicyAlways):
		st.Phase = corev1.PodRunning
	case succeeded == n:
		st.Phase = corev1.PodSucceeded
	case failed > 0 && succeeded+failed == n:
		st.Phase = corev1.PodFailed
	default:
		st.Phase = corev1.PodPending
	}

	// The kubelet reports which generation of the spec its status reflects.
	st.ObservedGeneration = pod.Generation
	condition := func(t corev1.PodConditionType, ok bool, reason, message string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: message, LastTransitionTime: now, ObservedGeneration: pod.Generation}
		if ok {
			c.Status, c.Reason, c.Message = corev1.ConditionTrue, "", ""
		}
		for _, old := range pod.Status.Conditions {
			if old.Type == t && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	ready := initialized && allReady && running == n
	containersReady := condition(corev1.ContainersReady, ready, "ContainersNotReady", namesMessage("containers with unready status", unready))
	var podReady corev1.PodCondition
	if ready {
		// Ready also waits for the conditions of the pod's readiness gates,
		// which other controllers set.
		podReady = condition(corev1.PodReady, true, "", "")
		if msg := readinessGatesMessage(pod); msg != "" {
			podReady = condition(corev1.PodReady, false, "ReadinessGatesNotReady", msg)
		}
	} else {
		podReady = condition(corev1.PodReady, false, "ContainersNotReady", containersReady.Message)
	}
	st.Conditions = []corev1.PodCondition{
		condition(corev1.PodReadyToStartContainers, sandboxReady, "", ""),
		condition(corev1.PodInitialized, initialized, "ContainersNotInitialized", namesMessage("containers with incomplete status", incomplete)),
		containersReady,
		podReady,
	}
	// PodScheduled is the kubelet's too: True on every pod it runs, bound
	// by the scheduler or by spec.nodeName (clients count pods by it), at
	// the spec's generation, the scheduler's transition time kept.
	st.Conditions = append(st.Conditions, condition(corev1.PodScheduled, true, "", ""))
	// Conditions the kubelet does not own (DisruptionTarget, readiness
	// gates, anyone's own) are kept as they are.
	for _, old := range pod.Status.Conditions {
		if !kubeletCondition[old.Type] {
			st.Conditions = append(st.Conditions, old)
		}
	}
	return st
}

// kubeletCondition are the pod conditions the node agent computes.
var kubeletCondition = map[corev1.PodConditionType]bool{
	corev1.PodReadyToStartContainers: true, corev1.PodInitialized: true, corev1.ContainersReady: true, corev1.PodReady: true, corev1.PodScheduled: true,
	corev1.PodResizePending: true, corev1.PodResizeInProgress: true,
}

// namesMessage is the kubelet's "containers with unready status: [a b]".
func namesMessage(what string, names []string) string {
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: [%s]", what, strings.Join(names, " "))
}

// readinessGatesMessage says which readiness gates hold the pod back, in
// the kubelet's words; "" when all their conditions are True.
func readinessGatesMessage(pod *corev1.Pod) string {
	var msgs []string
	for _, g := range pod.Spec.ReadinessGates {
		var found *corev1.PodCondition
		for i := range pod.Status.Conditions {
			if pod.Status.Conditions[i].Type == g.ConditionType {
				found = &pod.Status.Conditions[i]
			}
		}
		switch {
		case found == nil:
			msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType))
		case found.Status != corev1.ConditionTrue:
			msgs = append(msgs, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", g.ConditionType, found.Status))
		}
	}
	return strings.Join(msgs, ", ")
}

// ProbeState is what a running container's probes say (no entry: no
// probes run for it, so it is started and ready).
type ProbeState struct{ Started, Ready bool }

// containerStatus maps a container's CRI statuses (newest first; none: not
// created yet) to the API's. A running container is started and ready as its
// probes say (without probes: at once); one not created yet waits
// notCreated. A container waiting (restart back-off: CrashLoopBackOff; a
// configuration that cannot be built: CreateContainerConfigError) shows that,
// with its last exit as lastState.
func containerStatus(c corev1.Container, runtimeName string, history []*runtimeapi.ContainerStatus, wait corev1.ContainerStateWaiting, messages map[string]string, probed map[string]ProbeState, notCreated string) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Started: new(bool)}
	if len(history) == 0 {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: notCreated}
		if wait.Reason != "" {
			cs.State.Waiting = &wait
		}
		return cs
	}
	s := history[0]
	cs.ContainerID = runtimeName + "://" + s.Id
	cs.ImageID = s.ImageRef
	cs.RestartCount = int32(s.GetMetadata().GetAttempt())
	if len(history) > 1 {
		cs.LastTerminationState.Terminated = terminated(runtimeName, history[1], messages)
	}
	switch s.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: nanos(s.StartedAt)}
		cs.Ready, *cs.Started = true, true
		if p, ok := probed[s.Id]; ok {
			cs.Ready, *cs.Started = p.Ready && p.Started, p.Started
		}
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		if wait.Reason != "" {
			cs.State.Waiting = &wait
			cs.LastTerminationState.Terminated = terminated(runtimeName, s, messages)
			break
		}
		cs.State.Terminated = terminated(runtimeName, s, messages)
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		if wait.Reason != "" {
			cs.State.Waiting = &wait
		}
	}
	return cs
}

// terminated is an exited container's state: the runtime's reason when it
// gives one (OOMKilled, StartError), else Completed or Error by exit code;
// the message is the termination message, else the runtime's.
func terminated(runtimeName string, s *runtimeapi.ContainerStatus, messages map[string]string) *corev1.ContainerStateTerminated {
	reason := s.Reason
	if reason == "" {
		reason = "Completed"
		if s.ExitCode != 0 {
			reason = "Error"
		}
	}
	msg := messages[s.Id]
	if msg == "" {
		msg = s.Message
	}
	return &corev1.ContainerStateTerminated{ExitCode: s.ExitCode, Reason: reason, Message: msg,
		StartedAt: nanos(s.StartedAt), FinishedAt: nanos(s.FinishedAt), ContainerID: runtimeName + "://" + s.Id}
}

// nanos turns CRI nanoseconds into an API time, at the second granularity
// the API keeps (so a recomputed status compares equal).
func nanos(ns int64) metav1.Time {
	return metav1.NewTime(time.Unix(0, ns).Truncate(time.Second))
}

// WithNodeIPs is pod with the addresses its status will show: the node's
// and the sandbox's (or the node's, on the host network).
func WithNodeIPs(pod *corev1.Pod, hostIP string, sb *runtimeapi.PodSandboxStatus) *corev1.Pod {
	p := pod.DeepCopy()
	if hostIP != "" {
		p.Status.HostIP, p.Status.HostIPs = hostIP, []corev1.HostIP{{IP: hostIP}}
	}
	switch {
	case pod.Spec.HostNetwork && hostIP != "":
		p.Status.PodIP, p.Status.PodIPs = hostIP, []corev1.PodIP{{IP: hostIP}}
	case sb.GetNetwork().GetIp() != "":
		p.Status.PodIP, p.Status.PodIPs = sb.GetNetwork().GetIp(), []corev1.PodIP{{IP: sb.GetNetwork().GetIp()}}
		for _, ip := range sb.GetNetwork().GetAdditionalIps() {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip.GetIp()})
		}
	}
	return p
}

// TerminalStatus makes st the last status of a pod whose containers have
// all stopped, as the kubelet writes it: a container still shown running
// (its exit not seen) is terminated with the kubelet's ContainerStatusUnknown
// (exit code 137), and the phase is Succeeded when every app container
// exited 0, else Failed.
func TerminalStatus(st *corev1.PodStatus) {
	for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses, st.EphemeralContainerStatuses} {
		for i := range list {
			if r := list[i].State.Running; r != nil {
				list[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "ContainerStatusUnknown",
					Message: "The container could not be located when the pod was terminated", StartedAt: r.StartedAt}}
				list[i].Ready = false
			}
		}
	}
	st.Phase = corev1.PodSucceeded
	for _, cs := range st.ContainerStatuses {
		if t := cs.State.Terminated; t == nil || t.ExitCode != 0 {
			st.Phase = corev1.PodFailed
		}
	}
	// Nothing runs: not ready, for the kubelet's reason.
	for i, c := range st.Conditions {
		if (c.Type == corev1.PodReady || c.Type == corev1.ContainersReady) && c.Status == corev1.ConditionTrue {
			st.Conditions[i].Status, st.Conditions[i].Reason, st.Conditions[i].LastTransitionTime = corev1.ConditionFalse, "PodCompleted", metav1.Now()
		}
	}
}
