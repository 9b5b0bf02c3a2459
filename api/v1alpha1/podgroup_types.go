package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodGroupLabel puts a pod in the PodGroup of that name, in the pod's namespace.
const PodGroupLabel = "scheduling.kubeparts.dev/pod-group"

// PodGroupSpec says how many pods must be placed together.
type PodGroupSpec struct {
	// MinMember is how many of the group's pods must be schedulable at once before any
	// of them is bound.
	// +kubebuilder:validation:Minimum=1
	// +required
	MinMember int32 `json:"minMember"`

	// ScheduleTimeoutSeconds is how long the group's pods wait, once the first is ready
	// to bind, for the rest; then they are all rejected and retried.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=60
	// +optional
	ScheduleTimeoutSeconds *int32 `json:"scheduleTimeoutSeconds,omitempty"`
}

// PodGroupPhase is where a group is in its life.
// +kubebuilder:validation:Enum=Pending;Scheduled;Running;Succeeded;Failed
type PodGroupPhase string

// PodGroup phases.
const (
	// PodGroupPending: fewer than minMember pods are bound to nodes.
	PodGroupPending PodGroupPhase = "Pending"
	// PodGroupScheduled: at least minMember pods are bound, fewer run.
	PodGroupScheduled PodGroupPhase = "Scheduled"
	// PodGroupRunning: at least minMember pods run.
	PodGroupRunning PodGroupPhase = "Running"
	// PodGroupSucceeded: at least minMember pods succeeded and none is left running.
	PodGroupSucceeded PodGroupPhase = "Succeeded"
	// PodGroupFailed: so many pods failed that minMember can no longer run.
	PodGroupFailed PodGroupPhase = "Failed"
)

// PodGroupStatus counts the group's pods.
type PodGroupStatus struct {
	// +optional
	Phase PodGroupPhase `json:"phase,omitempty"`
	// Scheduled counts pods bound to a node (running or not).
	// +optional
	Scheduled int32 `json:"scheduled,omitempty"`
	// +optional
	Running int32 `json:"running,omitempty"`
	// +optional
	Succeeded int32 `json:"succeeded,omitempty"`
	// +optional
	Failed int32 `json:"failed,omitempty"`
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// PodGroup is a set of pods that are scheduled all together or not at all.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pg,categories=kubeparts
// +kubebuilder:printcolumn:name="Min",type=integer,JSONPath=`.spec.minMember`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Scheduled",type=integer,JSONPath=`.status.scheduled`
// +kubebuilder:printcolumn:name="Running",type=integer,JSONPath=`.status.running`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PodGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PodGroupSpec   `json:"spec"`
	Status PodGroupStatus `json:"status,omitempty"`
}

// PodGroupList is a list of PodGroups.
// +kubebuilder:object:root=true
type PodGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PodGroup `json:"items"`
}
