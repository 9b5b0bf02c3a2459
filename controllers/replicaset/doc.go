// Package replicaset is kubeparts' replicaset-controller: it keeps the number of pods a
// ReplicaSet owns at spec.replicas, adopts matching orphans and releases pods whose
// labels stop matching (ControllerRef), never trusts the cache to show its own recent
// writes (expectations), creates in slow-start batches, deletes by the stock ranking
// (pod-deletion-cost included) and reports the same status and ReplicaFailure condition
// as the stock controller.
package replicaset
