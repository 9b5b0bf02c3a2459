// Package deployment is kubeparts' deployment-controller. It rolls a Deployment's pod
// template out through ReplicaSets as the stock controller does: the current ReplicaSet
// is found by template equality ignoring pod-template-hash (never by re-hashing), a new
// one is named by a hash of the template and status.collisionCount, revisions count up
// (a rollback reuses the old ReplicaSet and gives it the next revision), RollingUpdate
// honours maxSurge/maxUnavailable and Recreate waits for old pods to go, scaling during
// a rollout is proportional, and the status fields and Available/Progressing/
// ReplicaFailure conditions are the ones `kubectl rollout status` reads.
//
// Files follow the stock split: rolling.go, recreate.go, sync.go (scaling, cleanup,
// revisions), progress.go (status and conditions, pure functions).
package deployment
