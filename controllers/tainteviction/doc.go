// Package tainteviction is kubeparts' taint-eviction-controller: it deletes the pods of
// nodes with NoExecute taints they do not tolerate, at once, or after the shortest
// tolerationSeconds among the matching tolerations (counted from the taint's timeAdded),
// and keeps pods that tolerate every NoExecute taint without a limit. A pod scheduled for
// deletion whose taint goes away first stays. Before deleting it records the
// DisruptionTarget condition (reason DeletionByTaintManager) and a TaintManagerEviction
// event, as the stock controller does.
package tainteviction
