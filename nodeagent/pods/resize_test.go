package pods

import (
	"context"
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient/kubeclienttest"
)

// updateRecorder is the fake runtime, remembering what containers were resized to.
type updateRecorder struct {
	*critest.FakeRuntimeService
	updates map[string]*runtimeapi.LinuxContainerResources
	fail    error
}

func (u *updateRecorder) UpdateContainerResources(_ context.Context, id string, r *runtimeapi.ContainerResources) error {
	if u.fail != nil {
		return u.fail
	}
	u.updates[id] = r.GetLinux()
	return nil
}

func cpuPod(name, cpu string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Generation: 1},
		Spec: corev1.PodSpec{NodeName: "n", Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}}}
}

func TestResize(t *testing.T) {
	ctx := context.Background()
	rt := &updateRecorder{FakeRuntimeService: critest.NewFakeRuntimeService(), updates: map[string]*runtimeapi.LinuxContainerResources{}}
	node := Node{Name: "n", Runtime: rt, Simulated: true, PodDir: t.TempDir(),
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}}
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	newManager := func() *Manager {
		return &Manager{pods: corelisters.NewPodLister(indexer)}
	}
	m := newManager()
	other, pod := cpuPod("other", "300m"), cpuPod("web", "100m")
	other.Status.StartTime = &metav1.Time{} // admitted: it counts
	for _, p := range []*corev1.Pod{other, pod} {
		if err := indexer.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	m.resourcesOf(node, other)

	// The pod runs with its first allocation.
	sb, err := rt.RunPodSandbox(ctx, &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Uid: "uid-web"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	id, err := rt.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "i"}, Labels: map[string]string{labelContainer: "c"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	r := m.resourcesOf(node, pod)
	if err := m.allocate(node, pod, r); err != nil {
		t.Fatal(err)
	}
	if err := m.actuate(ctx, node, withAllocation(pod, r.Allocated), sb, r); err != nil || len(rt.updates) != 0 {
		t.Fatalf("nothing to resize: %v %v", err, rt.updates)
	}

	resize := func(cpu string) *corev1.Pod {
		p := cpuPod("web", cpu)
		p.Generation = 2
		return p
	}
	status := func(p *corev1.Pod) corev1.PodStatus {
		st := corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "c", ContainerID: "fake://" + id, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
		withResizeStatus(&st, p, r, nil, metav1.Now())
		return st
	}
	conditions := func(st corev1.PodStatus) map[corev1.PodConditionType]string {
		out := map[corev1.PodConditionType]string{}
		for _, c := range st.Conditions {
			out[c.Type] = c.Reason + ": " + c.Message
		}
		return out
	}

	for _, tc := range []struct {
		cpu, reason, message string
	}{
		{"2", "Infeasible", "Node didn't have enough capacity: cpu, requested: 2000, capacity: 1000"},
		{"800m", "Deferred", "Node didn't have enough resource: cpu, requested: 800, used: 300, capacity: 1000"},
	} {
		p := resize(tc.cpu)
		if err := m.allocate(node, p, r); err != nil {
			t.Fatal(err)
		}
		if got := conditions(status(p))[corev1.PodResizePending]; got != tc.reason+": "+tc.message {
			t.Errorf("cpu %s: PodResizePending %q", tc.cpu, got)
		}
		if q := r.Allocated["c"].Requests[corev1.ResourceCPU]; q.String() != "100m" {
			t.Errorf("cpu %s: allocated %s, want the old 100m", tc.cpu, q.String())
		}
	}

	// Fits: allocated, then actuated in place; the status shows both.
	p := resize("500m")
	if err := m.allocate(node, p, r); err != nil {
		t.Fatal(err)
	}
	st := status(p)
	if _, pending := conditions(st)[corev1.PodResizePending]; pending {
		t.Errorf("resize that fits still pending: %v", st.Conditions)
	}
	if _, ok := conditions(st)[corev1.PodResizeInProgress]; !ok {
		t.Errorf("allocated but not actuated: want PodResizeInProgress, got %v", st.Conditions)
	}
	if q := st.ContainerStatuses[0].AllocatedResources[corev1.ResourceCPU]; q.String() != "500m" {
		t.Errorf("allocatedResources %v", st.ContainerStatuses[0].AllocatedResources)
	}
	rt.fail = errors.New("cgroup busy")
	if err := m.actuate(ctx, node, withAllocation(p, r.Allocated), sb, r); err != nil {
		t.Fatal(err)
	}
	if got := conditions(status(p))[corev1.PodResizeInProgress]; got != "Error: container c: cgroup busy" {
		t.Errorf("failed update: PodResizeInProgress %q", got)
	}
	rt.fail = nil
	if err := m.actuate(ctx, node, withAllocation(p, r.Allocated), sb, r); err != nil {
		t.Fatal(err)
	}
	if u := rt.updates[id]; u.GetCpuShares() != 512 {
		t.Errorf("container updated to %v, want 512 shares", u)
	}
	st = status(p)
	if len(st.Conditions) != 0 {
		t.Errorf("actuated: conditions %v", st.Conditions)
	}
	if q := st.ContainerStatuses[0].Resources.Requests[corev1.ResourceCPU]; q.String() != "500m" {
		t.Errorf("resources %v", st.ContainerStatuses[0].Resources)
	}

	// A restarted agent reads what it allocated and actuated.
	m2 := newManager()
	r2 := m2.resourcesOf(node, resize("100m")) // spec changed again meanwhile
	if q := r2.Allocated["c"].Requests[corev1.ResourceCPU]; q.String() != "500m" || r2.Actuated["c"].ContainerID != id {
		t.Errorf("after a restart: allocated %v actuated %v", r2.Allocated, r2.Actuated)
	}

	// A resizePolicy of RestartContainer restarts instead.
	p = resize("200m")
	p.Spec.Containers[0].ResizePolicy = []corev1.ContainerResizePolicy{{ResourceName: corev1.ResourceCPU, RestartPolicy: corev1.RestartContainer}}
	if err := m.allocate(node, p, r); err != nil {
		t.Fatal(err)
	}
	delete(rt.updates, id)
	if err := m.actuate(ctx, node, withAllocation(p, r.Allocated), sb, r); err != nil {
		t.Fatal(err)
	}
	if len(rt.updates) != 0 || !slices.Contains(rt.GetCalls(), "StopContainer") {
		t.Errorf("RestartContainer: updates %v, calls %v", rt.updates, rt.GetCalls())
	}
	if !m.stoppedForResize(p.UID, id) || m.stoppedForResize(p.UID, "another") {
		t.Error("the container stopped for the resize must be started again whatever its exit code")
	}
}

// Housekeeping drops what the manager keeps about pods that are gone even
// when nothing of them is left on the node.
func TestHousekeepingForgetsGonePods(t *testing.T) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	live := cpuPod("live", "100m")
	if err := indexer.Add(live); err != nil {
		t.Fatal(err)
	}
	m := &Manager{pods: corelisters.NewPodLister(indexer)}
	for _, uid := range []types.UID{live.UID, "gone"} {
		m.setEviction(uid, eviction{message: "m"})
		m.withRecord(uid, func(r *podRecord) { r.resources = &podResources{} })
	}
	m.housekeeping(context.Background())
	if kept := m.keptAbout("gone"); len(kept) > 0 {
		t.Errorf("kept about a pod that is gone: %v", kept)
	}
	if !m.lookup(live.UID, func(r *podRecord) {
		if r.resources == nil {
			t.Error("resources of a live pod dropped")
		}
	}) {
		t.Error("the record of a live pod dropped")
	}
}

// The kubelet's resource admission of new pods: the first resource short,
// against what the admitted pods use; critical pods always get in.
func TestAdmitResources(t *testing.T) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	// The Node advertises an extended resource the agent does not measure
	// (patched into its status by someone else): admission reads it there.
	apiNode := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: corev1.NodeStatus{
		Allocatable: corev1.ResourceList{"example.com/gpu": resource.MustParse("1")}}}
	m := &Manager{pods: corelisters.NewPodLister(indexer),
		client: kubeclienttest.FromClientset(fake.NewClientset(apiNode))}
	node := Node{Name: "n", Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi"),
		corev1.ResourcePods: resource.MustParse("4")}}
	running := cpuPod("running", "1500m")
	running.Status.StartTime = &metav1.Time{}
	done := cpuPod("done", "1")
	done.Status.StartTime, done.Status.Phase = &metav1.Time{}, corev1.PodSucceeded
	unadmitted := cpuPod("refused-earlier", "1") // never admitted: takes nothing
	for _, p := range []*corev1.Pod{running, done, unadmitted} {
		if err := indexer.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	extended := func(name, resourceName string) *corev1.Pod {
		p := cpuPod(name, "0")
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceName(resourceName)] = resource.MustParse("1")
		return p
	}
	critical := cpuPod("critical", "4")
	critical.Spec.Priority = ptrInt32(2000001000)
	for _, tc := range []struct {
		pod          *corev1.Pod
		reason, want string
	}{
		{cpuPod("fits", "500m"), "", ""},
		{cpuPod("too-big", "1"), "OutOfcpu", "Node didn't have enough resource: cpu, requested: 1000, used: 2000, capacity: 2000"},
		{extended("gpu", "example.com/gpu"), "", ""},
		{extended("second-gpu", "example.com/gpu"), "OutOfexample.com/gpu", "Node didn't have enough resource: example.com/gpu, requested: 1, used: 1, capacity: 1"},
		{extended("fpga", "example.com/fpga"), "OutOfexample.com/fpga", "Node didn't have enough resource: example.com/fpga, requested: 1, used: 0, capacity: 0"},
		{critical, "", ""},
		{cpuPod("fifth", "0"), "OutOfpods", "Node didn't have enough resource: pods, requested: 1, used: 4, capacity: 4"},
	} {
		if err := indexer.Add(tc.pod); err != nil {
			t.Fatal(err)
		}
		reason, msg := m.admitResources(context.Background(), node, tc.pod)
		if reason != tc.reason || msg != tc.want {
			t.Errorf("%s: %s %q, want %s %q", tc.pod.Name, reason, msg, tc.reason, tc.want)
		}
	}
}

func ptrInt32(v int32) *int32 { return &v }

// With an informer, a node's pods come from its node-name index.
func TestNodePodsIndex(t *testing.T) {
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{}, &corev1.Pod{}, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc, nodeNameIndex: indexByNodeName})
	m := &Manager{inf: inf}
	a, b := cpuPod("a", "1"), cpuPod("b", "2")
	b.Spec.NodeName = "elsewhere"
	a.Status.StartTime = &metav1.Time{}
	for _, p := range []*corev1.Pod{a, b} {
		if err := inf.GetIndexer().Add(p); err != nil {
			t.Fatal(err)
		}
	}
	used, count := m.inUse(Node{Name: "n"}, "")
	if q := used[corev1.ResourceCPU]; count != 1 || q.String() != "1" {
		t.Errorf("node n uses %v in %d pods, want 1 cpu in 1 pod", used, count)
	}
}
