// Package difftest compares a kubeparts scheduler plugin with the in-tree plugin
// it replaces on generated clusters. It is imported only by tests: it wraps the
// upstream framework runtime and scheduler cache snapshot (not the in-tree
// plugins themselves) so both plugins see exactly the same handle.
package difftest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
)

// Cluster is a generated set of nodes and the pods already bound to them.
type Cluster struct {
	Nodes []*corev1.Node
	Pods  []*corev1.Pod
}

// ClusterOptions bounds what RandomCluster generates.
type ClusterOptions struct {
	MaxNodes       int // default 8
	MaxPodsPerNode int // default 4
}

// Pools of values shared by generated nodes and pods, small on purpose so that
// selectors, tolerations and spread constraints match often.
var (
	Zones      = []string{"zone-a", "zone-b", "zone-c"}
	LabelKeys  = []string{"disk", "tier", "gpu"}
	LabelVals  = []string{"ssd", "hdd", "1", "2", "3", "true"}
	AppLabels  = []string{"web", "db", "cache"}
	Namespaces = []string{"default", "team-a"}
	TaintKeys  = []string{"dedicated", "gpu", "example.com/maintenance", corev1.TaintNodeUnschedulable, corev1.TaintNodeNotReady}
	Effects    = []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}
	// Extended resources some nodes advertise and some pods request.
	ExtendedResources = []corev1.ResourceName{"nvidia.com/gpu", "example.com/foo"}
)

// Pick returns a random element of s.
func Pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// RandomCluster generates nodes with random labels, zones, taints and
// capacities, and places random pods on them (without checking fit: the
// scheduler must cope with over-committed nodes, e.g. after allocatable shrank).
func RandomCluster(r *rand.Rand, opts ClusterOptions) *Cluster {
	if opts.MaxNodes == 0 {
		opts.MaxNodes = 8
	}
	if opts.MaxPodsPerNode == 0 {
		opts.MaxPodsPerNode = 4
	}
	c := &Cluster{}
	n := 1 + r.IntN(opts.MaxNodes)
	for i := range n {
		node := RandomNode(r, fmt.Sprintf("node-%d", i))
		c.Nodes = append(c.Nodes, node)
		for j := range r.IntN(opts.MaxPodsPerNode + 1) {
			p := RandomPod(r, fmt.Sprintf("running-%d-%d", i, j))
			p.Spec.NodeName = node.Name
			p.Status.Phase = corev1.PodRunning
			c.Pods = append(c.Pods, p)
		}
	}
	return c
}

// RandomNode returns a node with random labels, taints and allocatable.
func RandomNode(r *rand.Rand, name string) *corev1.Node {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			UID:    types.UID("uid-" + name),
			Labels: map[string]string{corev1.LabelHostname: name},
		},
	}
	if r.IntN(6) != 0 { // some nodes have no zone label
		node.Labels[corev1.LabelTopologyZone] = Pick(r, Zones)
	}
	for _, k := range LabelKeys {
		if r.IntN(2) == 0 {
			node.Labels[k] = Pick(r, LabelVals)
		}
	}
	for range r.IntN(3) {
		t := corev1.Taint{Key: Pick(r, TaintKeys), Effect: Pick(r, Effects)}
		if r.IntN(2) == 0 {
			t.Value = Pick(r, LabelVals)
		}
		node.Spec.Taints = append(node.Spec.Taints, t)
	}
	node.Spec.Unschedulable = r.IntN(8) == 0
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(int64(500+r.IntN(8)*500), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(int64(1+r.IntN(16))<<30, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(int64(2+r.IntN(10)), resource.DecimalSI),
	}
	if r.IntN(2) == 0 {
		alloc[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(1+r.IntN(20))<<30, resource.BinarySI)
	}
	for _, rn := range ExtendedResources {
		if r.IntN(3) == 0 {
			alloc[rn] = *resource.NewQuantity(int64(r.IntN(5)), resource.DecimalSI)
		}
	}
	if r.IntN(5) == 0 {
		alloc["hugepages-2Mi"] = *resource.NewQuantity(int64(r.IntN(8))<<21, resource.BinarySI)
	}
	node.Status.Allocatable = alloc
	node.Status.Capacity = alloc.DeepCopy()
	return node
}

// RandomPod returns an unscheduled pod with random labels and requests in a
// random namespace. Tests add the scheduling constraints they care about.
func RandomPod(r *rand.Rand, name string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: Pick(r, Namespaces),
			UID:       types.UID("uid-" + name),
			Labels:    map[string]string{},
		},
	}
	if r.IntN(5) != 0 {
		p.Labels["app"] = Pick(r, AppLabels)
	}
	if r.IntN(3) == 0 {
		p.Labels["tier"] = Pick(r, LabelVals)
	}
	for i := range 1 + r.IntN(3) {
		p.Spec.Containers = append(p.Spec.Containers, RandomContainer(r, fmt.Sprintf("c%d", i)))
	}
	for i := range r.IntN(3) {
		c := RandomContainer(r, fmt.Sprintf("init%d", i))
		if r.IntN(2) == 0 {
			always := corev1.ContainerRestartPolicyAlways
			c.RestartPolicy = &always // a sidecar
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	}
	if r.IntN(6) == 0 {
		p.Spec.Overhead = corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewMilliQuantity(int64(r.IntN(200)), resource.DecimalSI),
			corev1.ResourceMemory: *resource.NewQuantity(int64(r.IntN(64))<<20, resource.BinarySI),
		}
	}
	return p
}

// RandomContainer returns a container with random requests and limits,
// sometimes none at all, sometimes limits only (requests then default to them).
func RandomContainer(r *rand.Rand, name string) corev1.Container {
	c := corev1.Container{Name: name, Image: "busybox"}
	list := func() corev1.ResourceList {
		l := corev1.ResourceList{}
		if r.IntN(3) != 0 {
			l[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(r.IntN(2000)), resource.DecimalSI)
		}
		if r.IntN(3) != 0 {
			l[corev1.ResourceMemory] = *resource.NewQuantity(int64(r.IntN(4096))<<20, resource.BinarySI)
		}
		if r.IntN(5) == 0 {
			l[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(r.IntN(8))<<30, resource.BinarySI)
		}
		if r.IntN(6) == 0 {
			l[Pick(r, ExtendedResources)] = *resource.NewQuantity(int64(r.IntN(3)), resource.DecimalSI)
		}
		if r.IntN(12) == 0 {
			l["hugepages-2Mi"] = *resource.NewQuantity(int64(r.IntN(4))<<21, resource.BinarySI)
		}
		return l
	}
	switch r.IntN(5) {
	case 0: // best effort
	case 1: // limits only: the apiserver would copy them to requests, tests see both forms
		c.Resources.Limits = list()
	default:
		c.Resources.Requests = list()
	}
	return c
}

var registerMetrics sync.Once

// Env is the framework handle and node infos both plugins under comparison run with.
type Env struct {
	Handle    fwk.Handle
	NodeInfos []fwk.NodeInfo
	informers informers.SharedInformerFactory
}

// NewEnv builds a real upstream framework handle around a scheduler cache
// snapshot of c; objs (Services, ReplicaSets, ...) back its informer factory.
// NodeInfos follow the order of c.Nodes.
func NewEnv(t testing.TB, c *Cluster, objs ...runtime.Object) *Env {
	t.Helper()
	// The framework's parallelizer reports through the scheduler metrics and
	// panics while they are unregistered.
	registerMetrics.Do(schedmetrics.Register)
	snapshot := cache.NewSnapshot(c.Pods, c.Nodes)
	client := fake.NewClientset(objs...)
	inf := informers.NewSharedInformerFactory(client, 0)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h, err := frameworkruntime.NewFramework(ctx, nil, nil,
		frameworkruntime.WithSnapshotSharedLister(snapshot),
		frameworkruntime.WithInformerFactory(inf),
		frameworkruntime.WithClientSet(client),
	)
	if err != nil {
		t.Fatalf("framework: %v", err)
	}
	e := &Env{Handle: h, informers: inf}
	for _, n := range c.Nodes {
		ni, err := snapshot.NodeInfos().Get(n.Name)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		e.NodeInfos = append(e.NodeInfos, ni)
	}
	return e
}

// Start starts the informers the plugins asked for and waits for their caches.
// Call it after constructing the plugins.
func (e *Env) Start(ctx context.Context) {
	e.informers.Start(ctx.Done())
	e.informers.WaitForCacheSync(ctx.Done())
}

// NewCycleState returns a fresh cycle state as the framework makes per attempt.
func NewCycleState() fwk.CycleState { return framework.NewCycleState() }

// Filter runs pl's PreFilter (if any) and then Filter on every node, the way
// the framework does: a Skip from PreFilter skips Filter (the node passes), a
// failed PreFilter fails every node, and nodes left out of a PreFilterResult are
// UnschedulableAndUnresolvable. The result holds one status per node, nil when
// the node passes; the error reports a plugin failure (not an unschedulable verdict).
func (e *Env) Filter(ctx context.Context, pl fwk.Plugin, pod *corev1.Pod) []*fwk.Status {
	out := make([]*fwk.Status, len(e.NodeInfos))
	state := NewCycleState()
	if pre, ok := pl.(fwk.PreFilterPlugin); ok {
		res, st := pre.PreFilter(ctx, state, pod, e.NodeInfos)
		if st.IsSkip() {
			return out
		}
		if !st.IsSuccess() {
			for i := range out {
				out[i] = st
			}
			return out
		}
		if !res.AllNodes() {
			for i, ni := range e.NodeInfos {
				if !res.NodeNames.Has(ni.Node().Name) {
					out[i] = fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "excluded by PreFilterResult")
				}
			}
		}
	}
	f, ok := pl.(fwk.FilterPlugin)
	if !ok {
		return out
	}
	// Filter on a clone, as preemption and nominated pods make the framework do:
	// state that does not survive Clone breaks there first.
	state = state.Clone()
	for i, ni := range e.NodeInfos {
		if out[i] != nil {
			continue
		}
		if st := f.Filter(ctx, state, pod, ni); !st.IsSuccess() {
			out[i] = st
		}
	}
	return out
}

// Score runs pl's PreScore (if any), Score on each of nodes and NormalizeScore,
// returning the final scores in the order of nodes. A Skip from PreScore gives
// all zeros, as the framework then leaves the plugin out.
func (e *Env) Score(ctx context.Context, pl fwk.Plugin, pod *corev1.Pod, nodes []fwk.NodeInfo) ([]int64, *fwk.Status) {
	state := NewCycleState()
	// Some plugins (resource fit) compute what Score needs in PreFilter.
	if pre, ok := pl.(fwk.PreFilterPlugin); ok {
		if _, st := pre.PreFilter(ctx, state, pod, e.NodeInfos); !st.IsSuccess() && !st.IsSkip() {
			return nil, st
		}
	}
	scores := make([]int64, len(nodes))
	if pre, ok := pl.(fwk.PreScorePlugin); ok {
		st := pre.PreScore(ctx, state, pod, nodes)
		if st.IsSkip() {
			return scores, nil
		}
		if !st.IsSuccess() {
			return nil, st
		}
	}
	sp, ok := pl.(fwk.ScorePlugin)
	if !ok {
		return nil, fwk.AsStatus(fmt.Errorf("%s is not a score plugin", pl.Name()))
	}
	list := make(fwk.NodeScoreList, len(nodes))
	for i, ni := range nodes {
		s, st := sp.Score(ctx, state, pod, ni)
		if !st.IsSuccess() {
			return nil, st
		}
		list[i] = fwk.NodeScore{Name: ni.Node().Name, Score: s}
	}
	if ext := sp.ScoreExtensions(); ext != nil {
		if st := ext.NormalizeScore(ctx, state, pod, list); !st.IsSuccess() {
			return nil, st
		}
	}
	for i := range list {
		scores[i] = list[i].Score
	}
	return scores, nil
}

// Feasible returns the nodes whose status is nil (passed Filter).
func (e *Env) Feasible(statuses []*fwk.Status) []fwk.NodeInfo {
	var out []fwk.NodeInfo
	for i, st := range statuses {
		if st == nil {
			out = append(out, e.NodeInfos[i])
		}
	}
	return out
}

// SameStatus reports whether two statuses carry the same code and reasons;
// the plugin name is ignored since the names differ by design, and so is the
// order of reasons (stock builds some from map iteration).
func SameStatus(a, b *fwk.Status) bool {
	if a.IsSuccess() || b.IsSuccess() {
		return a.IsSuccess() == b.IsSuccess()
	}
	ra, rb := slices.Clone(a.Reasons()), slices.Clone(b.Reasons())
	slices.Sort(ra)
	slices.Sort(rb)
	return a.Code() == b.Code() && slices.Equal(ra, rb)
}

// Describe renders a status for failure messages.
func Describe(s *fwk.Status) string {
	if s.IsSuccess() {
		return "Success"
	}
	return fmt.Sprintf("%s %q", s.Code(), s.Reasons())
}

// Compare runs Filter (when both are filter plugins) and Score (when both
// score) of the stock plugin and ours for pod, and reports every difference
// as a test error prefixed with where (the seed, to reproduce it). Scores are
// compared on all nodes, feasible or not, which is stricter than the
// framework needs. It returns false when something differed.
func (e *Env) Compare(ctx context.Context, t testing.TB, where string, stock, ours fwk.Plugin, pod *corev1.Pod) bool {
	t.Helper()
	ok := true
	if _, isFilter := stock.(fwk.FilterPlugin); isFilter {
		want, got := e.Filter(ctx, stock, pod), e.Filter(ctx, ours, pod)
		for i := range want {
			if !SameStatus(want[i], got[i]) {
				t.Errorf("%s: node %s: Filter = %s, stock says %s", where, e.NodeInfos[i].Node().Name, Describe(got[i]), Describe(want[i]))
				ok = false
			}
		}
	}
	if _, isScore := stock.(fwk.ScorePlugin); isScore {
		want, wst := e.Score(ctx, stock, pod, e.NodeInfos)
		got, gst := e.Score(ctx, ours, pod, e.NodeInfos)
		if !SameStatus(wst, gst) {
			t.Errorf("%s: Score status = %s, stock says %s", where, Describe(gst), Describe(wst))
			return false
		}
		if !slices.Equal(want, got) {
			t.Errorf("%s: scores = %v, stock gives %v", where, got, want)
			ok = false
		}
	}
	return ok
}

// Run compares two plugins over n seeded cases (n/10 under -short). gen builds
// a cluster, the pending pod and any API objects the plugins list (Services,
// ReplicaSets); plugins constructs both on the case's handle. The first
// differing case stops the test with its seed and pod, to reproduce it.
func Run(t *testing.T, n int, gen func(r *rand.Rand) (*Cluster, *corev1.Pod, []runtime.Object), plugins func(t testing.TB, env *Env) (stock, ours fwk.Plugin)) {
	t.Helper()
	if testing.Short() {
		n = max(1, n/10)
	}
	ctx := context.Background()
	for seed := range uint64(n) {
		r := rand.New(rand.NewPCG(seed, 0x6b70))
		c, pod, objs := gen(r)
		env := NewEnv(t, c, objs...)
		stock, ours := plugins(t, env)
		env.Start(ctx)
		if !env.Compare(ctx, t, fmt.Sprintf("seed %d", seed), stock, ours, pod) {
			t.Fatalf("seed %d: pending pod %s/%s spec: %+v", seed, pod.Namespace, pod.Name, pod.Spec)
		}
	}
}

// Args encodes v the way the scheduler hands args to an out-of-tree plugin.
func Args(t testing.TB, v any) runtime.Object {
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return &runtime.Unknown{Raw: raw, ContentType: runtime.ContentTypeJSON}
}

// Factory builds a plugin on a handle, for RunPods.
type Factory func(ctx context.Context, h fwk.Handle) (fwk.Plugin, error)

// RunPods is Run for plugins without args: each case is a random cluster and
// a random pending pod that constrain adds the plugin's concern to.
func RunPods(t *testing.T, n int, constrain func(r *rand.Rand, pod *corev1.Pod, c *Cluster), stock, ours Factory) {
	t.Helper()
	Run(t, n, func(r *rand.Rand) (*Cluster, *corev1.Pod, []runtime.Object) {
		c := RandomCluster(r, ClusterOptions{})
		pod := RandomPod(r, "pending")
		constrain(r, pod, c)
		return c, pod, nil
	}, func(t testing.TB, env *Env) (fwk.Plugin, fwk.Plugin) {
		s, err := stock(context.Background(), env.Handle)
		if err != nil {
			t.Fatal(err)
		}
		o, err := ours(context.Background(), env.Handle)
		if err != nil {
			t.Fatal(err)
		}
		return s, o
	})
}
