package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Implementations of a component.
const (
	ImplementationStock     = "stock"
	ImplementationKubeparts = "kubeparts"
)

// Health values.
const (
	Healthy   = "Healthy"
	Unhealthy = "Unhealthy"
	Unknown   = "Unknown"
)

// Roles a Component can have.
const (
	RoleAPIServer         = "apiserver"
	RoleControllerManager = "controller-manager"
	RoleController        = "controller"
	RoleScheduler         = "scheduler"
	RoleNodeAgent         = "node-agent"
	RoleEtcd              = "etcd"
	// RoleAPIExtension is an aggregated API server such as kubeparts-apiserver.
	RoleAPIExtension = "api-extension"
	// RoleCloudControllerManager runs the cloud provider's controllers.
	RoleCloudControllerManager = "cloud-controller-manager"
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Component is one piece of the control plane as the cluster runs it now:
// which implementation is active, its instances, leader and health.
type Component struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status ComponentStatus `json:"status"`
}

// ComponentStatus is computed on read.
type ComponentStatus struct {
	// Role is what the component does: apiserver, controller-manager,
	// controller, scheduler, node-agent or etcd.
	Role string `json:"role"`
	// Implementation is stock or kubeparts.
	Implementation string `json:"implementation"`
	// Binary is the program that runs it, e.g. kubeparts-scheduler; for a
	// controller, the controller manager it runs in.
	Binary string `json:"binary,omitempty"`
	// Version is the reported build version, when the component tells it.
	Version string `json:"version,omitempty"`
	// Leader is the holder of the component's leader-election Lease.
	Leader string `json:"leader,omitempty"`
	// LeaseName is the Lease (namespace/name) the leader was read from.
	LeaseName string `json:"leaseName,omitempty"`
	// Health is Healthy, Unhealthy or Unknown (no way to check).
	Health string `json:"health"`
	// Message explains an Unhealthy or Unknown health.
	Message string `json:"message,omitempty"`
	// Since is when the current leader took over, or the current health began.
	Since *metav1.Time `json:"since,omitempty"`
	// Restarts is the sum of the copies' restarts by the supervisor.
	Restarts int32 `json:"restarts,omitempty"`
	// Instances are the running copies (apiserver instances, nodes, etcd members, endpoints).
	Instances []ComponentInstance `json:"instances,omitempty"`
}

// ComponentInstance is one running copy of a component.
type ComponentInstance struct {
	// Name is the copy's host (or node, member, apiserver identity).
	Name     string `json:"name"`
	Endpoint string `json:"endpoint,omitempty"`
	Health   string `json:"health"`
	Message  string `json:"message,omitempty"`
	Version  string `json:"version,omitempty"`
	// Leader is true on the copy that holds the component's Lease.
	Leader bool `json:"leader,omitempty"`
	// Restarts counts how often the supervisor (kubeparts up) started this copy
	// again after it exited.
	Restarts int32 `json:"restarts,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ComponentList is a list of Components.
type ComponentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Component `json:"items"`
}

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// EtcdMember is one member of the cluster's etcd, with the cluster's quorum
// arithmetic alongside so each row reads on its own.
type EtcdMember struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status EtcdMemberStatus `json:"status"`
}

// EtcdMemberStatus is read from etcd's member list and each member's status.
type EtcdMemberStatus struct {
	// ID is the member ID in hex, as etcdctl prints it.
	ID         string   `json:"id"`
	PeerURLs   []string `json:"peerURLs,omitempty"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	// Learner members do not vote.
	Learner bool `json:"learner,omitempty"`
	// Leader is true on the member that leads the raft group.
	Leader    bool   `json:"leader"`
	Version   string `json:"version,omitempty"`
	RaftTerm  uint64 `json:"raftTerm,omitempty"`
	RaftIndex uint64 `json:"raftIndex,omitempty"`
	// DBSize is the backend database size in bytes; DBSizeInUse what is not free pages.
	DBSize      int64 `json:"dbSize,omitempty"`
	DBSizeInUse int64 `json:"dbSizeInUse,omitempty"`
	// Health is Healthy when the member answered its status request.
	Health  string `json:"health"`
	Message string `json:"message,omitempty"`
	// Voters counts the cluster's voting members; QuorumSize is (Voters/2)+1;
	// FailureTolerance is how many voters may fail with quorum kept.
	Voters           int `json:"voters"`
	QuorumSize       int `json:"quorumSize"`
	FailureTolerance int `json:"failureTolerance"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// EtcdMemberList is a list of EtcdMembers.
type EtcdMemberList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EtcdMember `json:"items"`
}
