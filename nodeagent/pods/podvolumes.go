package pods

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeparts/kubeparts/nodeagent/volumes"
)

// volumeResync is how often a running pod's volumes are set up again, so
// ConfigMap and Secret updates reach its files; the kubelet's sync period.
const volumeResync = time.Minute

type volumeState struct {
	vols map[string]volumes.Volume
	at   time.Time
}

// mountError keeps a pod's containers from being created: a volume that
// cannot be set up (the kubelet's FailedMount).
type mountError struct{ err error }

func (e *mountError) Error() string { return e.err.Error() }
func (e *mountError) Unwrap() error { return e.err }

// setupVolumes sets up the pod's volumes when it first runs and again every
// volumeResync or when a projected token is due, and returns them (nil on
// nodes that keep no pod files).
func (m *Manager) setupVolumes(ctx context.Context, node Node, pod *corev1.Pod) (map[string]volumes.Volume, error) {
	vm := m.volumes[node.Name]
	if vm == nil {
		return nil, nil
	}
	now := m.now()
	var st volumeState
	ok := false
	m.lookup(pod.UID, func(r *podRecord) {
		if r.volumes != nil {
			st, ok = *r.volumes, true
		}
	})
	due := !ok || now.Sub(st.at) >= volumeResync
	if next, has := vm.NextRefresh(pod.UID); has && !now.Before(next) {
		due = true
	}
	if !due {
		return st.vols, nil
	}
	vols, err := vm.Setup(ctx, pod)
	if err != nil {
		node.event(pod, corev1.EventTypeWarning, "FailedMount", "%v", err)
		if ok {
			// A refresh that failed (a source deleted meanwhile): the running
			// containers keep what they have, as with the kubelet; retried.
			m.withRecord(pod.UID, func(r *podRecord) {
				r.volumes = &volumeState{vols: st.vols, at: now.Add(-volumeResync + 5*time.Second)}
			})
			return st.vols, nil
		}
		return nil, &mountError{err}
	}
	m.withRecord(pod.UID, func(r *podRecord) { r.volumes = &volumeState{vols: vols, at: now} })
	// Come back for the next refresh even if nothing else happens to the pod.
	wait := volumeResync
	if next, has := vm.NextRefresh(pod.UID); has && next.Sub(now) < wait {
		wait = max(next.Sub(now), time.Second)
	}
	if key, ok := m.keyOf(pod.UID); ok {
		m.queue.AddAfter(key, wait)
	}
	return vols, nil
}
