package pods

import (
	"k8s.io/apimachinery/pkg/types"
)

// A pod's life on the node, in the shape of the kubelet's pod workers: one
// record per pod UID holds everything the manager keeps about the pod, and
// an explicit phase says which sync function runs for it.
//
//	syncing      its containers are kept as its spec says (syncPod)
//	terminating  its containers are being stopped: it was deleted
//	             (terminate), evicted or past its deadline (evictPod)
//	terminated   nothing of it runs; its record is dropped (syncTerminated)
//
// The record goes in one step (forget), so nothing about a pod can outlive
// it. The pod's worker (one at a time per pod, the queue guarantees it) is
// the single writer of its status: probe results, container exits seen by
// the resync and the pod's own updates reach it through the queue, or,
// while it terminates, through the record's changed channel.

// lifecyclePhase is where a pod is in its life on the node.
type lifecyclePhase int

const (
	phaseSyncing lifecyclePhase = iota
	phaseTerminating
	phaseTerminated
)

func (p lifecyclePhase) String() string {
	switch p {
	case phaseTerminating:
		return "terminating"
	case phaseTerminated:
		return "terminated"
	}
	return "syncing"
}

// podRecord is everything kept about one pod.
type podRecord struct {
	// key is the pod's queue key (namespace/name): probe results re-sync it.
	key   string
	phase lifecyclePhase
	// waitErr is why the pod's next container waits (an image, a config).
	waitErr *waitError
	// messages caches exited containers' termination messages by container ID.
	messages map[string]string
	// volumes are the pod's volumes as last set up, and when; nil: never.
	volumes *volumeState
	// eviction is why the pod is evicted or turned away; nil: it is not.
	eviction *eviction
	// resources are its allocated and actuated resources (resize.go).
	resources *podResources
	// admitted: admitted by this agent and not started yet (admit.go).
	admitted bool
	// restarts and pulls are the containers' restart and image pull back-offs.
	restarts, pulls containerBackoff
	// changed is signalled by probe results while the pod terminates.
	changed chan struct{}
	// terminalWritten: a terminal phase was written; no later status may
	// take it back.
	terminalWritten bool
}

// record is the pod's record, created when missing; the caller holds m.mu.
func (m *Manager) record(uid types.UID) *podRecord {
	if m.records == nil {
		m.records = map[types.UID]*podRecord{}
	}
	r := m.records[uid]
	if r == nil {
		r = &podRecord{restarts: containerBackoff{}, pulls: containerBackoff{}}
		m.records[uid] = r
	}
	return r
}

// withRecord runs f on the pod's record under the manager's lock.
func (m *Manager) withRecord(uid types.UID, f func(r *podRecord)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m.record(uid))
}

// lookup reports the pod's record, if it has one, under the manager's lock.
func (m *Manager) lookup(uid types.UID, f func(r *podRecord)) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[uid]
	if ok {
		f(r)
	}
	return ok
}

// setPhase moves the pod to phase.
func (m *Manager) setPhase(uid types.UID, phase lifecyclePhase) {
	m.withRecord(uid, func(r *podRecord) { r.phase = phase })
}

// forget drops everything kept about a pod that is gone.
func (m *Manager) forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.records, uid)
}

// keyOf is the pod's queue key, if the manager has synced it.
func (m *Manager) keyOf(uid types.UID) (key string, ok bool) {
	m.lookup(uid, func(r *podRecord) { key = r.key })
	return key, key != ""
}
