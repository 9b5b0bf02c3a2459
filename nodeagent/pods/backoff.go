package pods

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet's restart back-off: 10s after the first exit, doubling up to
// 5 minutes, forgotten once a container has run 10 minutes without exiting.
// Image pulls back off the same way (ImagePullBackOff).
const (
	initialBackoff = 10 * time.Second
	maxBackoff     = 5 * time.Minute
	backoffReset   = 10 * time.Minute
)

type backoffEntry struct {
	delay time.Duration
	until time.Time
}

// containerBackoff tracks, per container of one pod, when a restart (or an
// image pull) is allowed again. It lives in the pod's record, under the
// manager's lock.
type containerBackoff map[string]*backoffEntry

// wait returns how long the container must still wait; zero means go now,
// and the next wait is doubled.
func (b containerBackoff) wait(container string, now time.Time) time.Duration {
	e := b[container]
	switch {
	case e == nil || now.Sub(e.until) > backoffReset:
		// The first restart (or the first after a long healthy run) is
		// immediate; the next one waits.
		b[container] = &backoffEntry{delay: initialBackoff, until: now.Add(initialBackoff)}
		return 0
	case now.Before(e.until):
		return e.until.Sub(now)
	}
	e.delay = min(2*e.delay, maxBackoff)
	e.until = now.Add(e.delay)
	return 0
}

// waiting returns the CrashLoopBackOff state of each container still
// waiting for its restart.
func (b containerBackoff) waiting(now time.Time) map[string]corev1.ContainerStateWaiting {
	out := map[string]corev1.ContainerStateWaiting{}
	for name, e := range b {
		if now.Before(e.until) {
			out[name] = corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: fmt.Sprintf("back-off %s restarting failed container", e.delay)}
		}
	}
	return out
}

// restartWait is how long the pod's container must wait before its
// restart (0: now, counted as a restart).
func (m *Manager) restartWait(uid types.UID, container string) (wait time.Duration) {
	m.withRecord(uid, func(r *podRecord) { wait = r.restarts.wait(container, m.now()) })
	return wait
}

// pullWait is the same for pulling the container's image.
func (m *Manager) pullWait(uid types.UID, container string) (wait time.Duration) {
	m.withRecord(uid, func(r *podRecord) { wait = r.pulls.wait(container, m.now()) })
	return wait
}

// containerKind is what part a container plays in its pod, which decides
// whether it restarts.
type containerKind int

const (
	appContainer containerKind = iota
	// initContainer runs to completion before the next one starts; a
	// restartable one (a sidecar) is an appContainer here.
	initContainer
	// ephemeralContainer runs once (kubectl debug), never restarted.
	ephemeralContainer
)

// shouldRestart applies the pod's restartPolicy (sidecars always restart) to
// a container that is no longer running. An init container that failed runs
// again unless the policy is Never (then the pod fails); one that completed
// never runs again.
func (m *Manager) shouldRestart(pod *corev1.Pod, c corev1.Container, last *runtimeapi.ContainerStatus, kind containerKind) bool {
	if last.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		return false
	}
	switch kind {
	case ephemeralContainer:
		return false
	case initContainer:
		return last.ExitCode != 0 && pod.Spec.RestartPolicy != corev1.RestartPolicyNever
	}
	if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
		return true
	}
	switch pod.Spec.RestartPolicy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return last.ExitCode != 0
	}
	return true
}
