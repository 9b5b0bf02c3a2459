// Package e2e drives the real `kubeparts up` binary end to end: a cluster with etcd,
// kube-apiserver, the controller manager, the scheduler, containerd and the node agent
// (kubeparts-nodeagent, or the stock kubelet with --stock=nodeagent), used through the real kubectl.
// It needs root (containerd and the node agent) and the binaries in $KUBEPARTS_BIN.
package e2e
