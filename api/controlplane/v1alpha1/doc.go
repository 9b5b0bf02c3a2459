// Package v1alpha1 holds kubeparts' control-plane view (group
// controlplane.kubeparts.dev), served by kubeparts-apiserver and computed on
// every read from Leases, Nodes, health endpoints and etcd: nothing is stored.
// The same Go types serve as the group's internal version (see AddToScheme).
// +kubebuilder:object:generate=true
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=dev.kubeparts.controlplane.v1alpha1
// +groupName=controlplane.kubeparts.dev
package v1alpha1
