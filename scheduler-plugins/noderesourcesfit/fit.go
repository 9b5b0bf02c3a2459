package noderesourcesfit

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"
	configv1 "k8s.io/kube-scheduler/config/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/pluginargs"
)

// Name is the plugin's name in a KubeSchedulerConfiguration profile.
const Name = "KubepartsNodeResourcesFit"

const (
	preFilterKey fwk.StateKey = "PreFilter" + Name
	preScoreKey  fwk.StateKey = "PreScore" + Name
)

// The requests a container without any is counted with when scoring, so that
// many best-effort pods do not all pile onto one node (stock uses the same).
const (
	nonZeroMilliCPU int64 = 100
	nonZeroMemory   int64 = 200 * 1024 * 1024
)

// Fit filters out nodes without room for a pod's requests and scores the rest
// by one of the stock strategies.
type Fit struct {
	ignored       sets.Set[string]
	ignoredGroups sets.Set[string]
	scorer        *scorer
	dra           fwk.SharedDRAManager
}

var (
	_ fwk.PreFilterPlugin   = &Fit{}
	_ fwk.FilterPlugin      = &Fit{}
	_ fwk.PreScorePlugin    = &Fit{}
	_ fwk.ScorePlugin       = &Fit{}
	_ fwk.EnqueueExtensions = &Fit{}
	_ fwk.SignPlugin        = &Fit{}
)

// New builds the plugin from NodeResourcesFitArgs-shaped args.
func New(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args := configv1.NodeResourcesFitArgs{}
	if err := pluginargs.Decode(Name, obj, &args); err != nil {
		return nil, err
	}
	setDefaults(&args)
	if err := validate(&args); err != nil {
		return nil, fmt.Errorf("plugin %s: %w", Name, err)
	}
	return &Fit{
		ignored:       sets.New(args.IgnoredResources...),
		ignoredGroups: sets.New(args.IgnoredResourceGroups...),
		scorer:        newScorer(args.ScoringStrategy),
		dra:           h.SharedDRAManager(),
	}, nil
}

// Name implements fwk.Plugin.
func (f *Fit) Name() string { return Name }

// podRequests is what the pod asks for, in the units NodeInfo uses.
type podRequests struct {
	milliCPU, memory, ephemeral int64
	scalar                      map[corev1.ResourceName]int64
	// scalarNames orders scalar so failure messages are stable.
	scalarNames []corev1.ResourceName
}

// Clone shares the state: it is never written after PreFilter, and the
// framework clones cycle states (preemption, nominated pods) expecting a value.
func (r *podRequests) Clone() fwk.StateData { return r }

func (r *podRequests) empty() bool {
	return r.milliCPU == 0 && r.memory == 0 && r.ephemeral == 0 && len(r.scalar) == 0
}

// requestsOf sums the pod's requests the way the kubelet admits it: app
// containers plus sidecars, or the largest init container if bigger, plus
// overhead, or the pod-level requests when set. component-helpers implements
// exactly that accounting.
func requestsOf(pod *corev1.Pod) *podRequests {
	list := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	r := &podRequests{}
	for name, q := range list {
		switch name {
		case corev1.ResourceCPU:
			r.milliCPU = q.MilliValue()
		case corev1.ResourceMemory:
			r.memory = q.Value()
		case corev1.ResourceEphemeralStorage:
			r.ephemeral = q.Value()
		default:
			if isScalar(name) {
				if r.scalar == nil {
					r.scalar = map[corev1.ResourceName]int64{}
				}
				r.scalar[name] = q.Value()
				r.scalarNames = append(r.scalarNames, name)
			}
		}
	}
	slices.Sort(r.scalarNames)
	return r
}

// PreFilter computes the pod's requests once per scheduling attempt.
func (f *Fit) PreFilter(_ context.Context, state fwk.CycleState, pod *corev1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	state.Write(preFilterKey, requestsOf(pod))
	return nil, nil
}

// PreFilterExtensions implements fwk.PreFilterPlugin; the state does not depend on other pods.
func (f *Fit) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Filter checks the node's free allocatable against the pod's requests. A
// resource the pod asks more of than the node has in total makes the verdict
// UnschedulableAndUnresolvable: preemption could not help there.
func (f *Fit) Filter(_ context.Context, state fwk.CycleState, pod *corev1.Pod, ni fwk.NodeInfo) *fwk.Status {
	v, err := state.Read(preFilterKey)
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("reading %s: %w", preFilterKey, err))
	}
	req := v.(*podRequests)
	var reasons []string
	code := fwk.Unschedulable
	short := func(reason string, want, used, capacity int64) {
		if want > capacity-used {
			reasons = append(reasons, reason)
			if want > capacity {
				code = fwk.UnschedulableAndUnresolvable
			}
		}
	}
	alloc, used := ni.GetAllocatable(), ni.GetRequested()
	// The pod-count check applies even to a pod that requests nothing, and it
	// is never unresolvable: evicting a pod makes room.
	if len(ni.GetPods())+1 > alloc.GetAllowedPodNumber() {
		reasons = append(reasons, "Too many pods")
	}
	if !req.empty() {
		if req.milliCPU > 0 {
			short("Insufficient cpu", req.milliCPU, used.GetMilliCPU(), alloc.GetMilliCPU())
		}
		if req.memory > 0 {
			short("Insufficient memory", req.memory, used.GetMemory(), alloc.GetMemory())
		}
		if req.ephemeral > 0 {
			short("Insufficient ephemeral-storage", req.ephemeral, used.GetEphemeralStorage(), alloc.GetEphemeralStorage())
		}
		for _, name := range req.scalarNames {
			want := req.scalar[name]
			if want == 0 || f.isIgnored(name) || f.servedByDRA(name, ni) {
				continue
			}
			short("Insufficient "+string(name), want, used.GetScalarResources()[name], alloc.GetScalarResources()[name])
		}
	}
	if len(reasons) == 0 {
		return nil
	}
	return fwk.NewStatus(code, reasons...)
}

func (f *Fit) isIgnored(name corev1.ResourceName) bool {
	if !isExtended(name) {
		return false
	}
	if f.ignored.Has(string(name)) {
		return true
	}
	group, _, _ := strings.Cut(string(name), "/")
	return f.ignoredGroups.Has(group)
}

// servedByDRA reports an extended resource the node does not advertise but a
// DeviceClass maps to: dynamic resource allocation accounts for it, not us.
func (f *Fit) servedByDRA(name corev1.ResourceName, ni fwk.NodeInfo) bool {
	if f.dra == nil {
		return false
	}
	if ni != nil && ni.GetAllocatable().GetScalarResources()[name] > 0 {
		return false
	}
	resolver := f.dra.DeviceClassResolver()
	return resolver != nil && resolver.GetDeviceClass(name) != nil
}

// scoreState holds the pod's requests for each scored resource, with the
// non-zero defaults applied to containers that request no cpu or memory.
type scoreState struct{ requests []int64 }

func (s *scoreState) Clone() fwk.StateData { return s } // read-only

// PreScore computes the per-resource requests used by Score.
func (f *Fit) PreScore(_ context.Context, state fwk.CycleState, pod *corev1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	state.Write(preScoreKey, &scoreState{requests: f.scorer.podRequests(pod)})
	return nil
}

// Score rates the node by the configured strategy.
func (f *Fit) Score(_ context.Context, state fwk.CycleState, pod *corev1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	var requests []int64
	if v, err := state.Read(preScoreKey); err == nil {
		requests = v.(*scoreState).requests
	} else {
		requests = f.scorer.podRequests(pod) // PreScore skipped, e.g. a single feasible node
	}
	return f.scorer.score(ni, requests), nil
}

// ScoreExtensions implements fwk.ScorePlugin: scores are already in [0, 100].
func (f *Fit) ScoreExtensions() fwk.ScoreExtensions { return nil }

// SignPod lets the scheduler reuse a result for pods with identical requests.
// Pods whose extended resources may go through DRA are not signed, as their
// fit depends on claims, not on the pod alone.
func (f *Fit) SignPod(_ context.Context, pod *corev1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	list := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	for name, q := range list {
		if isScalar(name) && !q.IsZero() && f.servedByDRA(name, nil) {
			return nil, fwk.NewStatus(fwk.Unschedulable, "pods using DRA-backed extended resources are not signed")
		}
	}
	return []fwk.SignFragment{{Key: fwk.ResourcesSignerName, Value: list}}, nil
}

// EventsToRegister requeues pods rejected for lack of resources when a bound
// pod goes away or shrinks, or a node appears or grows.
func (f *Fit) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Delete | fwk.UpdatePodScaleDown}, QueueingHintFn: f.afterPodChange},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAllocatable}, QueueingHintFn: f.afterNodeChange},
	}, nil
}

func (f *Fit) afterPodChange(logger klog.Logger, pod *corev1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldPod, _ := oldObj.(*corev1.Pod)
	newPod, _ := newObj.(*corev1.Pod)
	switch {
	case oldPod == nil:
		return fwk.Queue, fmt.Errorf("unexpected pod event objects %T, %T", oldObj, newObj)
	case newPod == nil: // deleted: only a pod that held (or was about to hold) room frees any
		if oldPod.Spec.NodeName == "" && oldPod.Status.NominatedNodeName == "" {
			return fwk.QueueSkip, nil
		}
		return fwk.Queue, nil
	case newPod.UID == pod.UID: // the pending pod itself was resized
		return fwk.Queue, nil
	case newPod.Spec.NodeName == "":
		return fwk.QueueSkip, nil
	}
	// A bound pod was resized in place: it helps only if it shrank a
	// resource the pending pod asks for.
	opts := resourcehelper.PodResourcesOptions{UseStatusResources: true}
	before, after := resourcehelper.PodRequests(oldPod, opts), resourcehelper.PodRequests(newPod, opts)
	for name, q := range resourcehelper.PodRequests(pod, opts) {
		if q.IsZero() || !(name == corev1.ResourceCPU || name == corev1.ResourceMemory || name == corev1.ResourceEphemeralStorage || isScalar(name)) {
			continue
		}
		b, a := before[name], after[name]
		if b.Cmp(a) > 0 {
			return fwk.Queue, nil
		}
	}
	logger.V(5).Info("bound pod changed without freeing what the pending pod needs", "pod", klog.KObj(pod), "changedPod", klog.KObj(newPod))
	return fwk.QueueSkip, nil
}

func (f *Fit) afterNodeChange(_ klog.Logger, pod *corev1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	newNode, ok := newObj.(*corev1.Node)
	if !ok {
		return fwk.Queue, fmt.Errorf("unexpected node event object %T", newObj)
	}
	req := requestsOf(pod)
	// Could the pod fit on the node if it were empty?
	if !f.fitsEmpty(req, newNode.Status.Allocatable) {
		return fwk.QueueSkip, nil
	}
	oldNode, _ := oldObj.(*corev1.Node)
	if oldNode == nil {
		return fwk.Queue, nil
	}
	grew := func(name corev1.ResourceName) bool {
		o, n := oldNode.Status.Allocatable[name], newNode.Status.Allocatable[name]
		return n.Cmp(o) > 0
	}
	if grew(corev1.ResourcePods) {
		return fwk.Queue, nil
	}
	if (req.milliCPU > 0 && grew(corev1.ResourceCPU)) || (req.memory > 0 && grew(corev1.ResourceMemory)) ||
		(req.ephemeral > 0 && grew(corev1.ResourceEphemeralStorage)) {
		return fwk.Queue, nil
	}
	for name, want := range req.scalar {
		if want > 0 && (grew(name) || f.servedByDRA(name, nil) && newNode.Status.Allocatable.Name(name, resource.DecimalSI).IsZero()) {
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

// fitsEmpty reports whether the requests fit a node's allocatable when
// nothing else runs there.
func (f *Fit) fitsEmpty(req *podRequests, alloc corev1.ResourceList) bool {
	value := func(name corev1.ResourceName) int64 {
		q := alloc[name]
		if name == corev1.ResourceCPU {
			return q.MilliValue()
		}
		return q.Value()
	}
	if value(corev1.ResourcePods) < 1 {
		return false
	}
	if req.milliCPU > value(corev1.ResourceCPU) || req.memory > value(corev1.ResourceMemory) || req.ephemeral > value(corev1.ResourceEphemeralStorage) {
		return false
	}
	for name, want := range req.scalar {
		if want > value(name) && !f.isIgnored(name) && !(f.servedByDRA(name, nil) && value(name) == 0) {
			return false
		}
	}
	return true
}
