// Package daemonset is kubeparts' daemonset-controller: one pod per eligible node. A
// node is eligible when the pod (with the default daemon tolerations added) matches its
// nodeSelector and required node affinity and tolerates its NoSchedule and NoExecute
// taints; an existing pod stays while it tolerates the NoExecute ones. Pods are placed
// through the scheduler: each carries a required node affinity on metadata.name for its
// node. Template versions live in ControllerRevisions (kubectl rollout history/undo
// work) and pods carry controller-revision-hash; RollingUpdate honours maxSurge and
// maxUnavailable, OnDelete replaces nothing. Status counts nodes as the stock
// controller does.
package daemonset
