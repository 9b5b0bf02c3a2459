package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of the control-plane view.
const GroupName = "controlplane.kubeparts.dev"

// SchemeGroupVersion is the served version.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

// AddToScheme registers the types under v1alpha1 and, being read-only and
// computed, also as the group's internal version: the apiserver machinery
// wants one, and with the same Go types conversion is the identity.
func AddToScheme(s *runtime.Scheme) error {
	for _, gv := range []schema.GroupVersion{SchemeGroupVersion, {Group: GroupName, Version: runtime.APIVersionInternal}} {
		s.AddKnownTypes(gv, &Component{}, &ComponentList{}, &EtcdMember{}, &EtcdMemberList{})
	}
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}
