package pods

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kubeparts/kubeparts/nodeagent/crilog"
)

// The kubelet's limits on termination messages: the file is read up to
// 4096 bytes; the log fallback takes the last 80 lines, at most 2048 bytes.
const (
	maxMessageBytes    = 4096
	fallbackLogLines   = 80
	fallbackLogBytes   = 2048
	minimumGracePeriod = 2 * time.Second
)

// terminationLogPath is the host file bound at the container's
// terminationMessagePath, one per restart attempt so a restart does not
// show its predecessor's message.
func terminationLogPath(node Node, uid types.UID, container string, attempt uint32) string {
	return filepath.Join(node.PodDir, string(uid), "containers", container, fmt.Sprintf("%d-termination-log", attempt))
}

// terminationLogMount creates the (empty) termination message file and
// returns its mount; nil when the node keeps no pod files or the container
// sets no path.
func terminationLogMount(node Node, pod *corev1.Pod, c corev1.Container, attempt uint32) (*runtimeapi.Mount, error) {
	if node.PodDir == "" || c.TerminationMessagePath == "" {
		return nil, nil
	}
	path := terminationLogPath(node, pod.UID, c.Name, attempt)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	// World-writable: the container may run as any user and must be able to write it.
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		return nil, err
	}
	return &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: path}, nil
}

// terminationMessage is what an exited container left: its message file,
// or with FallbackToLogsOnError and a failure and no file content, the tail
// of its log.
func terminationMessage(node Node, pod *corev1.Pod, c *corev1.Container, st *runtimeapi.ContainerStatus) string {
	if node.PodDir == "" || c == nil {
		return ""
	}
	msg := ""
	if f, err := os.Open(terminationLogPath(node, pod.UID, c.Name, st.GetMetadata().GetAttempt())); err == nil {
		data, _ := io.ReadAll(io.LimitReader(f, maxMessageBytes))
		f.Close()
		msg = string(data)
	}
	if msg == "" && c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError && st.ExitCode != 0 && st.LogPath != "" {
		msg, _ = crilog.Tail(st.LogPath, fallbackLogLines, fallbackLogBytes)
	}
	return msg
}

// messagesOf returns the termination messages of the pod's exited
// containers by container ID, read once per container and then cached
// (an exited container's message does not change).
func (m *Manager) messagesOf(node Node, pod *corev1.Pod, containers map[string][]*runtimeapi.ContainerStatus) map[string]string {
	var cached map[string]string
	m.withRecord(pod.UID, func(r *podRecord) {
		if r.messages == nil {
			r.messages = map[string]string{}
		}
		cached = r.messages
	})
	out := map[string]string{}
	for name, history := range containers {
		for _, st := range history {
			if st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
				continue
			}
			m.mu.Lock()
			msg, ok := cached[st.Id]
			m.mu.Unlock()
			if !ok {
				msg = terminationMessage(node, pod, specContainer(pod, name), st)
				m.mu.Lock()
				cached[st.Id] = msg
				m.mu.Unlock()
			}
			if msg != "" {
				out[st.Id] = msg
			}
		}
	}
	return out
}

func specContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// gracePeriod is how long the pod's containers get to stop: the deletion's
// grace period if set, else the spec's (30 s by default), never under the
// kubelet's 2 s minimum.
func gracePeriod(pod *corev1.Pod) time.Duration {
	secs := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		secs = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.DeletionGracePeriodSeconds != nil {
		secs = *pod.DeletionGracePeriodSeconds
	}
	return max(time.Duration(secs)*time.Second, minimumGracePeriod)
}

// stopContainers stops the pod's running containers within the grace
// period: app containers together (each first running its preStop hook),
// then the sidecars in reverse order, as the kubelet orders them.
func (m *Manager) stopContainers(ctx context.Context, node Node, pod *corev1.Pod, podIP string) error {
	deadline := m.now().Add(gracePeriod(pod))
	running, err := runningContainers(ctx, node, pod)
	if err != nil {
		return err
	}
	stop := func(c corev1.Container) error {
		id, ok := running[c.Name]
		if !ok {
			return nil
		}
		node.event(pod, corev1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
		return m.stopContainer(ctx, node, pod, c, id, podIP, deadline)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(pod.Spec.Containers))
	for i, c := range pod.Spec.Containers {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = stop(c) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for i := len(pod.Spec.InitContainers) - 1; i >= 0; i-- {
		if err := stop(pod.Spec.InitContainers[i]); err != nil {
			return err
		}
	}
	return nil
}

// stopContainer runs c's preStop hook, then has the runtime stop it with
// what is left until deadline (SIGTERM, then SIGKILL), never less than the
// kubelet's 2 s minimum.
func (m *Manager) stopContainer(ctx context.Context, node Node, pod *corev1.Pod, c corev1.Container, id, podIP string, deadline time.Time) error {
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		hookCtx, cancel := context.WithDeadline(ctx, deadline)
		if err := m.runHook(hookCtx, node, pod, c, id, podIP, c.Lifecycle.PreStop); err != nil {
			node.event(pod, corev1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: %v", err)
		}
		cancel()
	}
	left := max(deadline.Sub(m.now()), minimumGracePeriod)
	return node.Runtime.StopContainer(ctx, id, int64(left.Round(time.Second)/time.Second))
}

// runningContainers maps container name to the ID of its running container.
func runningContainers(ctx context.Context, node Node, pod *corev1.Pod) (map[string]string, error) {
	list, err := node.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{labelUID: string(pod.UID)}})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, c := range list {
		out[c.GetMetadata().GetName()] = c.Id
	}
	return out, nil
}

// removePodFiles deletes what the node kept for the pod (volumes,
// unmounted first, and termination message files) once its containers are gone.
func (m *Manager) removePodFiles(node Node, uid types.UID) error {
	if v := m.volumes[node.Name]; v != nil {
		return v.Cleanup(uid)
	}
	return nil
}
