package podtopologyspread

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// owners finds the objects grouping a pod with its siblings, whose selectors
// stand in for the label selector of default constraints.
type owners struct {
	services     corelisters.ServiceLister
	controllers  corelisters.ReplicationControllerLister
	replicaSets  appslisters.ReplicaSetLister
	statefulSets appslisters.StatefulSetLister
}

// newOwners asks the factory for the listers, which also makes it start their
// informers.
func newOwners(f informers.SharedInformerFactory) *owners {
	return &owners{
		services:     f.Core().V1().Services().Lister(),
		controllers:  f.Core().V1().ReplicationControllers().Lister(),
		replicaSets:  f.Apps().V1().ReplicaSets().Lister(),
		statefulSets: f.Apps().V1().StatefulSets().Lister(),
	}
}

var (
	replicationControllerGVK = corev1.SchemeGroupVersion.WithKind("ReplicationController")
	replicaSetGVK            = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")
	statefulSetGVK           = appsv1.SchemeGroupVersion.WithKind("StatefulSet")
)

// selectorFor combines the selectors of every Service in the pod's namespace
// that selects it and of its controller (when that is a ReplicationController,
// ReplicaSet or StatefulSet). All of them select the pod, so their label
// requirements cannot contradict each other. Lookup failures just contribute
// nothing: a missing owner means fewer pods are grouped, not an error.
func (o *owners) selectorFor(pod *corev1.Pod) labels.Selector {
	set := labels.Set{}
	if svcs, err := o.services.Services(pod.Namespace).List(labels.Everything()); err == nil {
		for _, svc := range svcs {
			// A Service without selector selects no pod at all.
			if svc.Spec.Selector == nil {
				continue
			}
			if labels.SelectorFromValidatedSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
				for k, v := range svc.Spec.Selector {
					set[k] = v
				}
			}
		}
	}

	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return set.AsSelector()
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return set.AsSelector()
	}
	var extra *metav1.LabelSelector
	switch gv.WithKind(ref.Kind) {
	case replicationControllerGVK:
		if rc, err := o.controllers.ReplicationControllers(pod.Namespace).Get(ref.Name); err == nil {
			for k, v := range rc.Spec.Selector {
				set[k] = v
			}
		}
	case replicaSetGVK:
		if rs, err := o.replicaSets.ReplicaSets(pod.Namespace).Get(ref.Name); err == nil {
			extra = rs.Spec.Selector
		}
	case statefulSetGVK:
		if ss, err := o.statefulSets.StatefulSets(pod.Namespace).Get(ref.Name); err == nil {
			extra = ss.Spec.Selector
		}
	}
	sel := set.AsSelector()
	if extra == nil {
		// Also covers a ReplicaSet/StatefulSet without selector: it adds nothing.
		return sel
	}
	parsed, err := metav1.LabelSelectorAsSelector(extra)
	if err != nil {
		return sel
	}
	if reqs, ok := parsed.Requirements(); ok {
		sel = sel.Add(reqs...)
	}
	return sel
}
