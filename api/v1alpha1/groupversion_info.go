// Package v1alpha1 holds kubeparts' scheduling API (group scheduling.kubeparts.dev):
// PodGroup, the unit of gang scheduling.
// +kubebuilder:object:generate=true
// +groupName=scheduling.kubeparts.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this package's types.
	GroupVersion = schema.GroupVersion{Group: "scheduling.kubeparts.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
