package pods

import (
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet's restart back-off: 10s after the first exit, doubling up to
// 5 minutes, forgotten once a container has run 10 minutes without exiting.
const (
	initialBackoff = 10 * time.Second
	maxBackoff     = 5 * time.Minute
	backoffReset   = 10 * time.Minute
)

type backoffEntry struct {
	delay time.Duration
	until time.Time
}

// backoff tracks, per pod and container, when a restart is allowed again.
type backoff struct {
	mu      sync.Mutex
	entries map[string]*backoffEntry
}

func newBackoff() *backoff { return &backoff{entries: map[string]*backoffEntry{}} }

func backoffKey(uid types.UID, container string) string { return string(uid) + "/" + container }

// wait returns how long the container must still wait; zero means restart
// now, and the next wait is doubled.
func (b *backoff) wait(uid types.UID, container string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := backoffKey(uid, container)
	e := b.entries[key]
	switch {
	case e == nil || now.Sub(e.until) > backoffReset:
		// The first restart (or the first after a long healthy run) is
		// immediate; the next one waits.
		b.entries[key] = &backoffEntry{delay: initialBackoff, until: now.Add(initialBackoff)}
		return 0
	case now.Before(e.until):
		return e.until.Sub(now)
	}
	e.delay = min(2*e.delay, maxBackoff)
	e.until = now.Add(e.delay)
	return 0
}

// forget drops the container's back-off (after a success).
func (b *backoff) forget(uid types.UID, container string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, backoffKey(uid, container))
}

// forgetPod drops every back-off of a pod that is gone.
func (b *backoff) forgetPod(uid types.UID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	prefix := string(uid) + "/"
	for key := range b.entries {
		if strings.HasPrefix(key, prefix) {
			delete(b.entries, key)
		}
	}
}

// waiting returns, for a pod, the CrashLoopBackOff state of each container
// still waiting for its restart.
func (b *backoff) waiting(uid types.UID, now time.Time) map[string]corev1.ContainerStateWaiting {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]corev1.ContainerStateWaiting{}
	prefix := string(uid) + "/"
	for key, e := range b.entries {
		if len(key) > len(prefix) && key[:len(prefix)] == prefix && now.Before(e.until) {
			out[key[len(prefix):]] = corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: fmt.Sprintf("back-off %s restarting failed container", e.delay)}
		}
	}
	return out
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
