// Package nodeagent is kubeparts-nodeagent, the node role: it registers a
// Node, keeps its Lease and conditions, and runs the pods bound to it through
// the CRI (k8s.io/cri-api's RuntimeService and ImageService interfaces).
//
// Runtimes: --runtime=simulated (the CRI fake from k8s.io/cri-api behind the
// same interfaces, so one process can host many nodes for scale tests of the
// scheduler and controllers, like kwok but through our pod lifecycle) and
// --runtime=remote (experimental: containerd through k8s.io/cri-client, as
// `kubeparts up --experimental-nodeagent` runs it). Probes, volumes, env from
// ConfigMaps/Secrets, restart back-off, graceful termination with preStop,
// the kubelet server (logs, exec, port-forward, metrics) and static pods are
// not implemented yet; see the notes on issue 5.
package nodeagent
