package noderesourcesfit

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	configv1 "k8s.io/kube-scheduler/config/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// scorer rates a node by how much of each configured resource would be in use
// with the pod on it.
type scorer struct {
	names   []corev1.ResourceName
	weights []int64
	// perResource maps (requested, allocatable) to a 0-100 score; requested
	// may exceed allocatable on an over-committed node.
	perResource func(requested, allocatable int64) int64
	// ratio averages only resources with a positive score and rounds, as the
	// stock RequestedToCapacityRatio does; the other strategies truncate.
	ratio bool
}

func newScorer(s *configv1.ScoringStrategy) *scorer {
	sc := &scorer{}
	for _, r := range s.Resources {
		sc.names = append(sc.names, corev1.ResourceName(r.Name))
		sc.weights = append(sc.weights, int64(r.Weight))
	}
	switch s.Type {
	case configv1.MostAllocated:
		sc.perResource = func(requested, allocatable int64) int64 {
			return min(requested, allocatable) * fwk.MaxScore / allocatable
		}
	case configv1.RequestedToCapacityRatio:
		shape := brokenLine(s.RequestedToCapacityRatio.Shape)
		sc.perResource = func(requested, allocatable int64) int64 {
			if requested > allocatable {
				return shape(100)
			}
			return shape(requested * 100 / allocatable)
		}
		sc.ratio = true
	default: // LeastAllocated
		sc.perResource = func(requested, allocatable int64) int64 {
			if requested > allocatable {
				return 0
			}
			return (allocatable - requested) * fwk.MaxScore / allocatable
		}
	}
	return sc
}

// brokenLine interpolates linearly between the shape's points, scaled from the
// config's 0-10 scores to node scores of 0-100, flat beyond both ends.
func brokenLine(points []configv1.UtilizationShapePoint) func(utilization int64) int64 {
	const scale = fwk.MaxScore / 10
	return func(u int64) int64 {
		for i, p := range points {
			if u > int64(p.Utilization) {
				continue
			}
			if i == 0 {
				return int64(p.Score) * scale
			}
			prev := points[i-1]
			x0, y0 := int64(prev.Utilization), int64(prev.Score)*scale
			x1, y1 := int64(p.Utilization), int64(p.Score)*scale
			return y0 + (y1-y0)*(u-x0)/(x1-x0)
		}
		return int64(points[len(points)-1].Score) * scale
	}
}

// podRequests returns the pod's request for each scored resource, counting a
// container without cpu or memory requests as 100m / 200Mi, and reading
// resized containers' actual allocation from status.
func (s *scorer) podRequests(pod *corev1.Pod) []int64 {
	list := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{
		UseStatusResources: true,
		InPlacePodLevelResourcesVerticalScalingEnabled: true,
		NonMissingContainerRequests: corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewMilliQuantity(nonZeroMilliCPU, resource.DecimalSI),
			corev1.ResourceMemory: *resource.NewQuantity(nonZeroMemory, resource.DecimalSI),
		},
	})
	out := make([]int64, len(s.names))
	for i, name := range s.names {
		q := list[name]
		if name == corev1.ResourceCPU {
			out[i] = q.MilliValue()
		} else {
			out[i] = q.Value()
		}
	}
	return out
}

// score combines the per-resource scores as a weighted average. A resource the
// node does not have is left out, and so is an extended resource the pod does
// not ask for (it says nothing about this pod's fit).
func (s *scorer) score(ni fwk.NodeInfo, requests []int64) int64 {
	var sum, weights int64
	for i, name := range s.names {
		if requests[i] == 0 && isScalar(name) {
			continue
		}
		allocatable, used := usage(ni, name)
		if allocatable == 0 {
			continue
		}
		v := s.perResource(used+requests[i], allocatable)
		if s.ratio && v <= 0 {
			continue
		}
		sum += v * s.weights[i]
		weights += s.weights[i]
	}
	if weights == 0 {
		return 0
	}
	if s.ratio {
		return int64(math.Round(float64(sum) / float64(weights)))
	}
	return sum / weights
}

// usage returns the node's allocatable and what its pods already request of
// one resource; cpu and memory use the non-zero accounting like the pod side.
func usage(ni fwk.NodeInfo, name corev1.ResourceName) (allocatable, used int64) {
	alloc := ni.GetAllocatable()
	switch name {
	case corev1.ResourceCPU:
		return alloc.GetMilliCPU(), ni.GetNonZeroRequested().GetMilliCPU()
	case corev1.ResourceMemory:
		return alloc.GetMemory(), ni.GetNonZeroRequested().GetMemory()
	case corev1.ResourceEphemeralStorage:
		return alloc.GetEphemeralStorage(), ni.GetRequested().GetEphemeralStorage()
	}
	a, ok := alloc.GetScalarResources()[name]
	if !ok {
		return 0, 0
	}
	return a, ni.GetRequested().GetScalarResources()[name]
}
