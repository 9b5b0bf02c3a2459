// Package localcluster runs a whole Kubernetes cluster on this machine as child processes:
// etcd and kube-apiserver with real TLS, then for each role either the kubeparts piece or
// the stock binary, and a node (containerd plus the node agent or the stock kubelet).
// It is what `kubeparts up` runs and what the e2e tests and side-by-side benchmarks use
// as their harness.
//
// Every child runs in its own process group so that Ctrl-C reaches only `kubeparts up`,
// which then stops the children in reverse start order. `up` is a child subreaper, so the
// containerd shims and container processes that daemonize are still its descendants and
// are swept before it exits; a later `up` also finds and stops what a killed one left.
package localcluster
