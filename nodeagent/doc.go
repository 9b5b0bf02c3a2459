// Package nodeagent is kubeparts-nodeagent, the node role: it registers a
// Node, keeps its Lease and conditions, and runs the pods bound to it through
// the CRI (k8s.io/cri-api's RuntimeService and ImageService interfaces).
//
// Runtimes: --runtime=remote (containerd through k8s.io/cri-client; what
// `kubeparts up` runs on every node) and --runtime=simulated (the CRI fake
// from k8s.io/cri-api behind the same interfaces, so one process can host
// many nodes for scale tests of the scheduler and controllers, like kwok but
// through our pod lifecycle). What it does and does not do yet is listed in
// the README (kubeparts-nodeagent).
package nodeagent
