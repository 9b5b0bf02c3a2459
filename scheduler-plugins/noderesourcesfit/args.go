package noderesourcesfit

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	configv1 "k8s.io/kube-scheduler/config/v1"
)

// setDefaults applies the stock defaults: LeastAllocated over cpu and memory
// with weight 1.
func setDefaults(a *configv1.NodeResourcesFitArgs) {
	if a.ScoringStrategy == nil {
		a.ScoringStrategy = &configv1.ScoringStrategy{Type: configv1.LeastAllocated}
	}
	if a.ScoringStrategy.Type == "" {
		a.ScoringStrategy.Type = configv1.LeastAllocated
	}
	if len(a.ScoringStrategy.Resources) == 0 {
		a.ScoringStrategy.Resources = []configv1.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}}
	}
	for i := range a.ScoringStrategy.Resources {
		if a.ScoringStrategy.Resources[i].Weight == 0 {
			a.ScoringStrategy.Resources[i].Weight = 1
		}
	}
}

// validate rejects what the stock validation rejects, and also resource names
// the node could never report (a typo such as "cpus" would otherwise score
// every node 0 for that resource without a word).
func validate(a *configv1.NodeResourcesFitArgs) error {
	var errs field.ErrorList
	for i, r := range a.IgnoredResources {
		errs = append(errs, metav1validation.ValidateLabelName(r, field.NewPath("ignoredResources").Index(i))...)
	}
	for i, g := range a.IgnoredResourceGroups {
		p := field.NewPath("ignoredResourceGroups").Index(i)
		if strings.Contains(g, "/") {
			errs = append(errs, field.Invalid(p, g, "a resource group is the part before '/', it cannot contain '/'"))
		}
		errs = append(errs, metav1validation.ValidateLabelName(g, p)...)
	}
	s := a.ScoringStrategy
	sp := field.NewPath("scoringStrategy")
	types := []string{string(configv1.LeastAllocated), string(configv1.MostAllocated), string(configv1.RequestedToCapacityRatio)}
	if !sets.New(types...).Has(string(s.Type)) {
		errs = append(errs, field.NotSupported(sp.Child("type"), s.Type, types))
	}
	seen := sets.New[string]()
	for i, r := range s.Resources {
		p := sp.Child("resources").Index(i)
		if r.Weight <= 0 || r.Weight > 100 {
			errs = append(errs, field.Invalid(p.Child("weight"), r.Weight, fmt.Sprintf("weight of resource %q must be in (0, 100]", r.Name)))
		}
		if seen.Has(r.Name) {
			errs = append(errs, field.Duplicate(p.Child("name"), r.Name))
		}
		seen.Insert(r.Name)
		if msg := checkResourceName(corev1.ResourceName(r.Name)); msg != "" {
			errs = append(errs, field.Invalid(p.Child("name"), r.Name, msg))
		}
	}
	rp := sp.Child("requestedToCapacityRatio")
	switch {
	case s.Type == configv1.RequestedToCapacityRatio && s.RequestedToCapacityRatio == nil:
		errs = append(errs, field.Required(rp, "required when type is RequestedToCapacityRatio"))
	case s.Type == configv1.RequestedToCapacityRatio:
		errs = append(errs, validateShape(s.RequestedToCapacityRatio.Shape, rp.Child("shape"))...)
	case s.RequestedToCapacityRatio != nil:
		errs = append(errs, field.Forbidden(rp, "only allowed when type is RequestedToCapacityRatio"))
	}
	return errs.ToAggregate()
}

func validateShape(shape []configv1.UtilizationShapePoint, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(shape) == 0 {
		return append(errs, field.Required(p, "at least one point is needed"))
	}
	for i, pt := range shape {
		if i > 0 && shape[i-1].Utilization >= pt.Utilization {
			errs = append(errs, field.Invalid(p.Index(i).Child("utilization"), pt.Utilization, "utilization must increase from point to point"))
		}
		if pt.Utilization < 0 || pt.Utilization > 100 {
			errs = append(errs, field.Invalid(p.Index(i).Child("utilization"), pt.Utilization, "must be in [0, 100]"))
		}
		if pt.Score < 0 || pt.Score > 10 {
			errs = append(errs, field.Invalid(p.Index(i).Child("score"), pt.Score, "must be in [0, 10]"))
		}
	}
	return errs
}

// checkResourceName returns why name can never appear in a node's allocatable,
// or "" when it can.
func checkResourceName(name corev1.ResourceName) string {
	switch name {
	case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
		return ""
	case corev1.ResourcePods:
		return "pods is checked by the filter, not scored"
	}
	if isScalar(name) {
		if errs := validation.IsQualifiedName(string(name)); len(errs) > 0 {
			return strings.Join(errs, "; ")
		}
		return ""
	}
	return "unknown resource: use cpu, memory, ephemeral-storage, hugepages-<size> or an extended resource such as nvidia.com/gpu"
}

// isExtended reports a resource outside the kubernetes.io namespace, such as
// nvidia.com/gpu, that would also make a valid quota name.
func isExtended(name corev1.ResourceName) bool {
	s := string(name)
	if !strings.Contains(s, "/") || isPrefixedNative(name) || strings.HasPrefix(s, corev1.DefaultResourceRequestsPrefix) {
		return false
	}
	return len(validation.IsQualifiedName(corev1.DefaultResourceRequestsPrefix+s)) == 0
}

func isPrefixedNative(name corev1.ResourceName) bool {
	return strings.Contains(string(name), corev1.ResourceDefaultNamespacePrefix)
}

// isScalar reports the resources NodeInfo tracks in its scalar map: extended,
// hugepages, kubernetes.io-prefixed native and attachable volume resources.
func isScalar(name corev1.ResourceName) bool {
	s := string(name)
	return isExtended(name) || isPrefixedNative(name) ||
		strings.HasPrefix(s, corev1.ResourceHugePagesPrefix) ||
		strings.HasPrefix(s, corev1.ResourceAttachableVolumesPrefix)
}
