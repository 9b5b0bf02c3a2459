package nodelifecycle

import (
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// observation is what the controller last saw of a node's heartbeats, and when (by its
// own clock) it last saw one of them move.
type observation struct {
	readyHeartbeat metav1.Time
	leaseRenew     metav1.MicroTime
	probed         time.Time
}

// heartbeats tracks observations per node.
type heartbeats struct {
	mu    sync.Mutex
	nodes map[string]*observation
}

func newHeartbeats() *heartbeats { return &heartbeats{nodes: map[string]*observation{}} }

// observe records the node's current heartbeats and returns when one last moved. A node
// seen for the first time counts from now (or from its creation, if that is later: a
// node's first heartbeat may be on its way).
func (h *heartbeats) observe(node *corev1.Node, lease *coordinationv1.Lease, now time.Time) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ready metav1.Time
	if c := condition(node, corev1.NodeReady); c != nil {
		ready = c.LastHeartbeatTime
	}
	var renew metav1.MicroTime
	if lease != nil && lease.Spec.RenewTime != nil {
		renew = *lease.Spec.RenewTime
	}
	o, ok := h.nodes[node.Name]
	if !ok {
		o = &observation{readyHeartbeat: ready, leaseRenew: renew, probed: now}
		h.nodes[node.Name] = o
		return o.probed
	}
	if !ready.Equal(&o.readyHeartbeat) || !renew.Equal(&o.leaseRenew) {
		o.readyHeartbeat, o.leaseRenew, o.probed = ready, renew, now
	}
	return o.probed
}

// keepOnly drops the observations of nodes that no longer exist.
func (h *heartbeats) keepOnly(nodes []corev1.Node) {
	h.mu.Lock()
	defer h.mu.Unlock()
	live := make(map[string]bool, len(nodes))
	for i := range nodes {
		live[nodes[i].Name] = true
	}
	for name := range h.nodes {
		if !live[name] {
			delete(h.nodes, name)
		}
	}
}

func condition(node *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == t {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}
