// Package podcri is the node agent's pure translation between a pod and the
// CRI, kept apart from the machinery that acts on it (package pods): the
// sandbox's and containers' security contexts and namespaces, sysctls, Linux
// resources, DNS (resolv.conf per dnsPolicy, hostnames, the managed
// /etc/hosts content), and back from the runtime's state to the pod's status
// (phase, conditions, container states, the terminal status of a deleted
// pod), as the kubelet computes them. Nothing here talks to the API server or
// the runtime: each function is a table test away from the kubelet's
// documented behaviour.
package podcri
