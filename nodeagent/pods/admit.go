package pods

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
)

// The kubelet's resource admission: a new pod is refused when it does not
// fit next to the pods the node already admitted (OutOfcpu, OutOfmemory,
// OutOfpods, ...: "Node didn't have enough resource: cpu, requested: 3000,
// used: 100, capacity: 2000"). The scheduler normally sees to that; this
// catches pods bound by spec.nodeName, which bypass it. Pods are admitted one
// at a time, so two new pods cannot both take the last room.

// nodeNameIndex indexes the pod informer by node: one process may host
// thousands of simulated nodes, and admission looks at one node's pods.
const nodeNameIndex = "spec.nodeName"

func indexByNodeName(obj any) ([]string, error) {
	if p, ok := obj.(*corev1.Pod); ok {
		return []string{p.Spec.NodeName}, nil
	}
	return nil, nil
}

// nodePods are the pods bound to the node, from the informer's index (or,
// for managers built without an informer in tests, the lister).
func (m *Manager) nodePods(node string) []*corev1.Pod {
	var out []*corev1.Pod
	if m.inf != nil {
		objs, _ := m.inf.GetIndexer().ByIndex(nodeNameIndex, node)
		for _, o := range objs {
			if p, ok := o.(*corev1.Pod); ok {
				out = append(out, p)
			}
		}
		return out
	}
	pods, _ := m.pods.List(labels.Everything())
	for _, p := range pods {
		if p.Spec.NodeName == node {
			out = append(out, p)
		}
	}
	return out
}

// inUse sums the requests of the node's admitted, non-terminal pods other
// than exclude, at their allocated resources, and counts them.
func (m *Manager) inUse(node Node, exclude types.UID) (corev1.ResourceList, int64) {
	used := corev1.ResourceList{}
	var count int64
	for _, p := range m.nodePods(node.Name) {
		if p.UID == exclude || isTerminal(p) || !m.wasAdmitted(p) {
			continue
		}
		count++
		for name, q := range resourcehelper.PodRequests(withAllocation(p, m.allocatedOf(p.UID)), resourcehelper.PodResourcesOptions{}) {
			sum := used[name]
			sum.Add(q)
			used[name] = sum
		}
	}
	return used, count
}

// wasAdmitted: the pod ran (it has a start time) or this agent admitted it.
func (m *Manager) wasAdmitted(p *corev1.Pod) bool {
	if p.Status.StartTime != nil {
		return true
	}
	admitted := false
	m.lookup(p.UID, func(r *podRecord) { admitted = r.admitted })
	return admitted
}

// admitResources admits a new pod if it fits, remembering it; otherwise it
// says why not, in the kubelet's words. Critical pods (static, mirror,
// system-critical priority) are always admitted, as the kubelet makes room
// for them instead.
func (m *Manager) admitResources(ctx context.Context, node Node, pod *corev1.Pod) (reason, message string) {
	m.admitMu.Lock()
	defer m.admitMu.Unlock()
	if !isCritical(pod) {
		used, count := m.inUse(node, pod.UID)
		if reason, message = insufficient(pod, m.allocatableFor(ctx, node, pod), used, count); reason != "" {
			return reason, message
		}
	}
	m.withRecord(pod.UID, func(r *podRecord) { r.admitted = true })
	return "", ""
}

// insufficient checks pod against allocatable with used taken by count
// pods: the first resource short, pods first, then CPU, memory and the
// rest, as the kubelet reports it; "" fits.
func insufficient(pod *corev1.Pod, allocatable, used corev1.ResourceList, count int64) (string, string) {
	if capacity, ok := allocatable[corev1.ResourcePods]; ok && count+1 > capacity.Value() {
		return "OutOfpods", fmt.Sprintf("Node didn't have enough resource: pods, requested: 1, used: %d, capacity: %d", count, capacity.Value())
	}
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	names := []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}
	var extra []corev1.ResourceName // extended resources, hugepages: in a stable order
	for name := range requests {
		if name != corev1.ResourceCPU && name != corev1.ResourceMemory && name != corev1.ResourceEphemeralStorage {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	names = append(names, extra...)
	for _, name := range names {
		request, ok := requests[name]
		if !ok || request.IsZero() {
			continue
		}
		capacity := allocatable[name] // an extended resource the node lacks: capacity 0
		inUse := used[name]
		total := inUse.DeepCopy()
		total.Add(request)
		if total.Cmp(capacity) > 0 {
			return "OutOf" + string(name), insufficientMessage(name, request, inUse, capacity)
		}
	}
	return "", ""
}

func insufficientMessage(name corev1.ResourceName, request, used, capacity resource.Quantity) string {
	return fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
		name, amount(name, request), amount(name, used), amount(name, capacity))
}

// allocatableFor is the node's allocatable for admitting pod. Resources the
// agent does not measure (extended resources others advertise in the
// Node's status) are read from the Node when the pod asks for one, as the
// kubelet admits against its Node object.
func (m *Manager) allocatableFor(ctx context.Context, node Node, pod *corev1.Pod) corev1.ResourceList {
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	foreign := false
	for name := range requests {
		if _, ok := node.Allocatable[name]; !ok {
			foreign = true
		}
	}
	if !foreign {
		return node.Allocatable
	}
	n, err := m.client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	if err != nil {
		return node.Allocatable // admitted against what is known; the capacity check says why not
	}
	out := node.Allocatable.DeepCopy()
	if out == nil {
		out = corev1.ResourceList{}
	}
	for name, q := range n.Status.Allocatable {
		if _, ours := node.Allocatable[name]; !ours {
			out[name] = q
		}
	}
	return out
}
