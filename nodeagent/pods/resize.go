package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/kubeparts/kubeparts/nodeagent/podcri"
)

// In-place pod resize, as the kubelet does it: a container's spec resources
// are what is desired; the agent allocates them when the node has room
// (else the pod shows PodResizePending, Infeasible when the node could never
// hold it, Deferred when other pods are in the way, retried on every resync),
// then actuates them on the running container (CRI UpdateContainerResources,
// or a restart where its resizePolicy says RestartContainer), the pod
// showing PodResizeInProgress until that is done. New and restarted
// containers always start with the allocated resources, and container
// statuses show the allocated (allocatedResources) and actual (resources)
// values. What was allocated and actuated is kept in <pod dir>/resources.json,
// so an agent restart neither forgets a deferred resize nor redoes one.

// resizeReason is a resize condition's reason and message.
type resizeReason struct{ reason, message string }

// podResources is the agent's record of a pod's resizable containers.
type podResources struct {
	// Allocated are the resources the agent admitted, per container.
	Allocated map[string]corev1.ResourceRequirements `json:"allocated"`
	// Actuated are the resources a container (by ID) was last given.
	Actuated map[string]actuated `json:"actuated,omitempty"`
	// pending is why the spec's resources are not allocated yet (reason
	// Infeasible or Deferred); failed why actuating them failed.
	pending, failed resizeReason
	// restarts are the containers (by ID) stopped to take new resources:
	// started again whatever their exit code and the pod's restartPolicy.
	restarts map[string]bool
}

// stoppedForResize: the container was stopped by a resize that needs a restart.
func (m *Manager) stoppedForResize(uid types.UID, containerID string) bool {
	restart := false
	m.lookup(uid, func(r *podRecord) { restart = r.resources != nil && r.resources.restarts[containerID] })
	return restart
}

type actuated struct {
	ContainerID string                      `json:"containerID"`
	Resources   corev1.ResourceRequirements `json:"resources"`
}

// resizable are the containers whose resources may change in place: the app
// containers and sidecars.
func resizable(pod *corev1.Pod) []*corev1.Container {
	var out []*corev1.Container
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			out = append(out, c)
		}
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

func specResources(pod *corev1.Pod) map[string]corev1.ResourceRequirements {
	m := map[string]corev1.ResourceRequirements{}
	for _, c := range resizable(pod) {
		m[c.Name] = *c.Resources.DeepCopy()
	}
	return m
}

// withAllocation is pod with its containers' resources as allocated (the
// pod itself when nothing differs).
func withAllocation(pod *corev1.Pod, alloc map[string]corev1.ResourceRequirements) *corev1.Pod {
	out := pod
	for i, c := range resizable(pod) {
		a, ok := alloc[c.Name]
		if !ok || apiequality.Semantic.DeepEqual(a, c.Resources) {
			continue
		}
		if out == pod {
			out = pod.DeepCopy()
		}
		resizable(out)[i].Resources = *a.DeepCopy()
	}
	return out
}

func resourcesPath(node Node, uid types.UID) string {
	return filepath.Join(node.PodDir, string(uid), "resources.json")
}

// resourcesOf is the pod's record, loaded from its file after a restart, or
// started from its spec for a pod seen for the first time.
func (m *Manager) resourcesOf(node Node, pod *corev1.Pod) *podResources {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := m.record(pod.UID)
	if rec.resources != nil {
		return rec.resources
	}
	r := &podResources{}
	if node.PodDir != "" {
		if data, err := os.ReadFile(resourcesPath(node, pod.UID)); err == nil {
			if err := json.Unmarshal(data, r); err != nil {
				klog.Background().Error(err, "Ignoring a corrupt resource allocation record", "pod", klog.KObj(pod))
				r = &podResources{}
			}
		}
	}
	if r.Allocated == nil {
		r.Allocated = specResources(pod)
	}
	if r.Actuated == nil {
		r.Actuated = map[string]actuated{}
	}
	rec.resources = r
	return r
}

// saveResources writes the record where a restarted agent finds it.
func saveResources(node Node, uid types.UID, r *podResources) error {
	if node.PodDir == "" {
		return nil
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	path := resourcesPath(node, uid)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// allocate decides on a pending resize: the spec's resources become the
// allocation when the node has room for them next to its other pods'
// allocations; otherwise the record says why not.
func (m *Manager) allocate(node Node, pod *corev1.Pod, r *podResources) error {
	if allocatedAsSpec(pod, r.Allocated) { // every sync: compare without copying
		r.pending = resizeReason{}
		return nil
	}
	desired := specResources(pod)
	reason, msg := m.resizeFit(node, pod)
	if reason != "" {
		r.pending = resizeReason{reason, msg}
		return nil
	}
	m.mu.Lock() // other pods' resizes read it
	r.Allocated, r.pending, r.failed = desired, resizeReason{}, resizeReason{}
	m.mu.Unlock()
	return saveResources(node, pod.UID, r)
}

// allocatedAsSpec: alloc holds exactly the pod's resizable containers at
// their spec's resources.
func allocatedAsSpec(pod *corev1.Pod, alloc map[string]corev1.ResourceRequirements) bool {
	cs := resizable(pod)
	if len(cs) != len(alloc) {
		return false
	}
	for _, c := range cs {
		if a, ok := alloc[c.Name]; !ok || !apiequality.Semantic.DeepEqual(a, c.Resources) {
			return false
		}
	}
	return true
}

// resizeFit says why the node cannot take the pod at its desired resources,
// in the kubelet's words: Infeasible above the node's allocatable, Deferred
// when its admission next to the other admitted pods fails; "" fits.
func (m *Manager) resizeFit(node Node, pod *corev1.Pod) (reason, message string) {
	want := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	for _, name := range []corev1.ResourceName{corev1.ResourceMemory, corev1.ResourceCPU} {
		capacity, request := node.Allocatable[name], want[name]
		if !capacity.IsZero() && request.Cmp(capacity) > 0 {
			return "Infeasible", fmt.Sprintf("Node didn't have enough capacity: %s, requested: %d, capacity: %d", name, amount(name, request), amount(name, capacity))
		}
	}
	// The rest is the kubelet's admission of the resized pod next to the others.
	used, count := m.inUse(node, pod.UID)
	if _, msg := insufficient(pod, node.Allocatable, used, count); msg != "" {
		return "Deferred", msg
	}
	return "", ""
}

// amount is a quantity as the kubelet prints it: millicores, or bytes.
func amount(name corev1.ResourceName, q resource.Quantity) int64 {
	if name == corev1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// allocatedOf is what was allocated to a pod's containers, if known.
func (m *Manager) allocatedOf(uid types.UID) map[string]corev1.ResourceRequirements {
	var allocated map[string]corev1.ResourceRequirements
	m.lookup(uid, func(r *podRecord) {
		if r.resources != nil {
			allocated = r.resources.Allocated
		}
	})
	return allocated
}

// actuate gives the running containers of the (allocated) pod their
// allocated resources: in place, or by a restart where the container's
// resizePolicy asks for one for a resource that changed. The pod cgroup is
// set before (room to grow) and after (the final, maybe smaller, limits).
func (m *Manager) actuate(ctx context.Context, node Node, pod *corev1.Pod, sandboxID string, r *podResources) error {
	settled := true // every container recorded with its allocation: no runtime call
	for _, c := range resizable(pod) {
		if have, ok := r.Actuated[c.Name]; !ok || !apiequality.Semantic.DeepEqual(have.Resources, c.Resources) {
			settled = false
		}
	}
	if settled {
		return nil
	}
	existing, err := containersOf(ctx, node.Runtime, sandboxID)
	if err != nil {
		return err
	}
	type change struct {
		c  *corev1.Container
		id string
	}
	var changes []change
	recorded := false
	for _, c := range resizable(pod) {
		history := existing[c.Name]
		if len(history) == 0 || history[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		id := history[0].Id
		have, ok := r.Actuated[c.Name]
		if !ok || have.ContainerID != id {
			// Started by this agent with the allocation of its time, or
			// adopted without a record: it has what is allocated now
			// unless a resize came in between, which the record would show.
			r.Actuated[c.Name] = actuated{id, *c.Resources.DeepCopy()}
			recorded = true
			continue
		}
		if !apiequality.Semantic.DeepEqual(have.Resources, c.Resources) {
			changes = append(changes, change{c, id})
		}
	}
	if len(changes) == 0 {
		if recorded {
			return saveResources(node, pod.UID, r)
		}
		return nil
	}
	cgroup := ""
	if !node.Simulated && node.CgroupParent != "" {
		_, cgroup = node.podCgroup(pod)
		_ = setPodCgroup(cgroup, pod) // may refuse to shrink below the containers yet: set again below
	}
	var errs []error
	for _, ch := range changes {
		if restartFor(ch.c, r.Actuated[ch.c.Name].Resources) {
			node.event(pod, corev1.EventTypeNormal, "Killing", "Container %s resize requires restart", ch.c.Name)
			if err := node.Runtime.StopContainer(ctx, ch.id, int64(gracePeriod(pod)/time.Second)); err != nil {
				errs = append(errs, err)
				continue
			}
			m.withRecord(pod.UID, func(r *podRecord) { delete(r.restarts, ch.c.Name) }) // a restart for a resize is not a crash
			m.mu.Lock()
			if r.restarts == nil {
				r.restarts = map[string]bool{}
			}
			r.restarts[ch.id] = true
			m.mu.Unlock()
			delete(r.Actuated, ch.c.Name)
			continue
		}
		if err := node.Runtime.UpdateContainerResources(ctx, ch.id, &runtimeapi.ContainerResources{Linux: podcri.LinuxResources(*ch.c)}); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", ch.c.Name, err))
			continue
		}
		r.Actuated[ch.c.Name] = actuated{ch.id, *ch.c.Resources.DeepCopy()}
	}
	if cgroup != "" {
		if err := setPodCgroup(cgroup, pod); err != nil {
			errs = append(errs, fmt.Errorf("pod cgroup: %w", err))
		}
	}
	r.failed = resizeReason{}
	if err := errors.Join(errs...); err != nil {
		r.failed = resizeReason{"Error", err.Error()}
	}
	return saveResources(node, pod.UID, r)
}

// restartFor: the container's resizePolicy asks for a restart for a
// resource whose requests or limits change from have.
func restartFor(c *corev1.Container, have corev1.ResourceRequirements) bool {
	for _, p := range c.ResizePolicy {
		if p.RestartPolicy != corev1.RestartContainer {
			continue
		}
		if !have.Requests[p.ResourceName].Equal(c.Resources.Requests[p.ResourceName]) || !have.Limits[p.ResourceName].Equal(c.Resources.Limits[p.ResourceName]) {
			return true
		}
	}
	return false
}

// withResizeStatus adds what the pod's record says to a computed status: the
// resize conditions (transition times kept from old) and, as the kubelet
// reports them for every container that exists, its allocated requests and
// its resources: the actuated ones while a resizable container runs, else
// what it was or will be started with.
func withResizeStatus(st *corev1.PodStatus, pod *corev1.Pod, r *podResources, old []corev1.PodCondition, now metav1.Time) {
	specs := map[string]corev1.ResourceRequirements{}
	for _, c := range pod.Spec.InitContainers {
		specs[c.Name] = c.Resources
	}
	for _, c := range pod.Spec.Containers {
		specs[c.Name] = c.Resources
	}
	for _, c := range pod.Spec.EphemeralContainers {
		specs[c.Name] = c.Resources
	}
	inProgress := false
	set := func(list []corev1.ContainerStatus) {
		for i := range list {
			cs := &list[i]
			if cs.ContainerID == "" {
				continue // not created yet
			}
			alloc, ok := r.Allocated[cs.Name]
			if !ok {
				alloc = specs[cs.Name]
			}
			cs.AllocatedResources = alloc.Requests
			res := alloc.DeepCopy()
			if a, ok := r.Actuated[cs.Name]; ok && cs.State.Running != nil && a.ContainerID == containerIDOf(cs.ContainerID) {
				res = a.Resources.DeepCopy()
				inProgress = inProgress || !apiequality.Semantic.DeepEqual(a.Resources, alloc)
			}
			cs.Resources = res
		}
	}
	set(st.InitContainerStatuses)
	set(st.ContainerStatuses)
	set(st.EphemeralContainerStatuses)
	condition := func(t corev1.PodConditionType, e resizeReason) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, Reason: e.reason, Message: e.message, LastTransitionTime: now, ObservedGeneration: pod.Generation}
		for _, o := range old {
			if o.Type == t && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		return c
	}
	if r.pending.reason != "" {
		st.Conditions = append(st.Conditions, condition(corev1.PodResizePending, r.pending))
	}
	if inProgress || r.failed.reason != "" {
		st.Conditions = append(st.Conditions, condition(corev1.PodResizeInProgress, r.failed))
	}
}

// containerIDOf strips the runtime prefix of a status's containerID.
func containerIDOf(s string) string {
	if _, id, ok := strings.Cut(s, "://"); ok {
		return id
	}
	return s
}
