package pods

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kubeparts/kubeparts/nodeagent/podcri"
	"github.com/kubeparts/kubeparts/nodeagent/probes"
)

// runHook runs a lifecycle handler (postStart or preStop) of container id:
// exec in the container, an HTTP GET against it, or a sleep; it ends with
// ctx (the grace period for preStop).
func (m *Manager) runHook(ctx context.Context, node Node, pod *corev1.Pod, c corev1.Container, id, podIP string, h *corev1.LifecycleHandler) error {
	switch {
	case h.Exec != nil:
		timeout := time.Duration(0)
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d)
		}
		stdout, stderr, err := node.Runtime.ExecSync(ctx, id, h.Exec.Command, timeout)
		if err != nil {
			return fmt.Errorf("exec %q: %w: %s%s", h.Exec.Command, err, stdout, stderr)
		}
		return nil
	case h.HTTPGet != nil:
		return probes.HTTPGetHook(ctx, h.HTTPGet, &c, podIP)
	case h.Sleep != nil:
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		}
		return nil
	case h.TCPSocket != nil:
		// Deprecated and never run by the kubelet either.
		return nil
	}
	return fmt.Errorf("lifecycle handler of %s has no action", c.Name)
}

// postStart runs the container's postStart hook right after it started;
// a failure is the kubelet's FailedPostStartHook, and the container is
// killed (then restarted per the restart policy).
func (m *Manager) postStart(ctx context.Context, node Node, pod *corev1.Pod, c corev1.Container, id string, sb *runtimeapi.PodSandbox) error {
	podIP := ""
	if st, err := node.Runtime.PodSandboxStatus(ctx, sb.Id, false); err == nil {
		podIP = st.GetStatus().GetNetwork().GetIp()
	}
	hookCtx, cancel := context.WithTimeout(ctx, gracePeriod(pod))
	defer cancel()
	err := m.runHook(hookCtx, node, pod, c, id, podIP, c.Lifecycle.PostStart)
	if err == nil {
		return nil
	}
	node.event(pod, corev1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed: %v", err)
	node.event(pod, corev1.EventTypeNormal, "Killing", "FailedPostStartHook")
	if serr := node.Runtime.StopContainer(ctx, id, int64(gracePeriod(pod)/time.Second)); serr != nil {
		return serr
	}
	return nil
}

// probeStates runs the probes of the pod's running containers and returns
// their results by container ID.
func (m *Manager) probeStates(node Node, pod *corev1.Pod, podIP string, containers map[string][]*runtimeapi.ContainerStatus) map[string]podcri.ProbeState {
	p := m.probes[node.Name]
	if p == nil {
		return nil
	}
	running := map[string]probes.Container{}
	for name, history := range containers {
		if len(history) > 0 && history[0].State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			running[name] = probes.Container{ID: history[0].Id, StartedAt: time.Unix(0, history[0].StartedAt)}
		}
	}
	p.Sync(pod, podIP, running)
	out := map[string]podcri.ProbeState{}
	for name, rc := range running {
		started, ready, _ := p.State(pod.UID, name, rc.ID)
		out[rc.ID] = podcri.ProbeState{Started: started, Ready: ready}
	}
	return out
}

// killUnhealthy stops the containers a liveness or startup probe condemned
// (with the preStop hook and the grace period, as any kill); the next sync
// restarts them per the restart policy.
func (m *Manager) killUnhealthy(ctx context.Context, node Node, pod *corev1.Pod) error {
	p := m.probes[node.Name]
	if p == nil {
		return nil
	}
	running, err := runningContainers(ctx, node, pod)
	if err != nil {
		return err
	}
	for name, id := range running {
		_, _, kill := p.State(pod.UID, name, id)
		c := specContainer(pod, name)
		if kill == "" || c == nil {
			continue
		}
		node.event(pod, corev1.EventTypeNormal, "Killing", "%s", kill)
		if err := m.stopContainer(ctx, node, pod, *c, id, pod.Status.PodIP, m.now().Add(probeKillGrace(pod, c, kill))); err != nil {
			return err
		}
	}
	return nil
}

// probeKillGrace is the grace period of a container killed by a failing
// probe: the probe's own terminationGracePeriodSeconds when the liveness or
// startup probe that failed sets one (so a hung container is not given the
// pod's long grace), else the pod's. kill is the probes manager's reason,
// which names the probe.
func probeKillGrace(pod *corev1.Pod, c *corev1.Container, kill string) time.Duration {
	var probe *corev1.Probe
	switch {
	case strings.Contains(kill, "failed liveness probe"):
		probe = c.LivenessProbe
	case strings.Contains(kill, "failed startup probe"):
		probe = c.StartupProbe
	}
	if probe != nil && probe.TerminationGracePeriodSeconds != nil {
		return max(time.Duration(*probe.TerminationGracePeriodSeconds)*time.Second, minimumGracePeriod)
	}
	return gracePeriod(pod)
}
