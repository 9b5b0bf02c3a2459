// Package nodelifecycle is kubeparts' node-lifecycle-controller. It watches each node's
// heartbeats (its Lease in kube-node-lease and the Ready condition's heartbeat), timed by
// its own clock when they change so that clock skew between machines does not matter;
// after --node-monitor-grace-period without one it sets the node's conditions to
// Unknown and marks its pods not ready. It keeps the taints that follow from the
// conditions: not-ready and unreachable with NoSchedule at once and with NoExecute
// through a per-zone rate limiter that slows down (or stops) when a large part of a zone
// is unhealthy, so that a network partition does not evict everything; the pressure,
// network-unavailable and unschedulable NoSchedule taints; and removes them all when the
// node recovers. Evicting the pods of NoExecute-tainted nodes is the
// taint-eviction-controller's job (package tainteviction), as upstream.
package nodelifecycle
