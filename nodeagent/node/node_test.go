package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient/kubeclienttest"
)

type fakeRuntime struct {
	ready  bool
	images []corev1.ContainerImage
	// podCIDRs records UpdatePodCIDR calls; failPodCIDR fails them.
	podCIDRs    []string
	failPodCIDR error
}

func (f *fakeRuntime) UpdatePodCIDR(_ context.Context, cidrs string) error {
	if f.failPodCIDR != nil {
		return f.failPodCIDR
	}
	f.podCIDRs = append(f.podCIDRs, cidrs)
	return nil
}

func (f *fakeRuntime) Ready(context.Context) (bool, bool, string) { return f.ready, true, "down" }
func (f *fakeRuntime) Images(context.Context) ([]corev1.ContainerImage, error) {
	return append([]corev1.ContainerImage(nil), f.images...), nil
}

type fakePressure struct{ memory, disk bool }

func (f *fakePressure) Pressure() (bool, bool, bool) { return f.memory, f.disk, false }

// The conditions carry the kubelet's reasons, a pressure condition is True
// under pressure, and a transition time moves only when its status does.
func TestStatusConditions(t *testing.T) {
	rt, pr := &fakeRuntime{ready: true}, &fakePressure{}
	clock := time.Unix(1000, 0)
	k := NewKeeper(nil, Config{Name: "n", Pressure: pr}, rt)
	k.now = func() time.Time { return clock }
	get := func(st corev1.NodeStatus, typ corev1.NodeConditionType) corev1.NodeCondition {
		for _, c := range st.Conditions {
			if c.Type == typ {
				return c
			}
		}
		t.Fatalf("no %s condition", typ)
		return corev1.NodeCondition{}
	}
	st := k.status(context.Background())
	if c := get(st, corev1.NodeMemoryPressure); c.Status != corev1.ConditionFalse || c.Reason != "KubeletHasSufficientMemory" {
		t.Errorf("memory: %+v", c)
	}
	if c := get(st, corev1.NodeReady); c.Status != corev1.ConditionTrue || c.Reason != "KubeletReady" {
		t.Errorf("ready: %+v", c)
	}
	clock = clock.Add(time.Minute)
	pr.memory, pr.disk, rt.ready = true, true, false
	st = k.status(context.Background())
	for typ, reason := range map[corev1.NodeConditionType]string{corev1.NodeMemoryPressure: "KubeletHasInsufficientMemory", corev1.NodeDiskPressure: "KubeletHasDiskPressure"} {
		if c := get(st, typ); c.Status != corev1.ConditionTrue || c.Reason != reason || !c.LastTransitionTime.Time.Equal(clock) {
			t.Errorf("%s under pressure: %+v", typ, c)
		}
	}
	if c := get(st, corev1.NodeReady); c.Status != corev1.ConditionFalse || c.Reason != "KubeletNotReady" || c.Message != "container runtime not ready: down" {
		t.Errorf("not ready: %+v", c)
	}
	if c := get(st, corev1.NodePIDPressure); !c.LastTransitionTime.Time.Equal(time.Unix(1000, 0)) {
		t.Errorf("PIDPressure did not change but its transition time moved: %+v", c)
	}
}

// status.images lists the largest images first, at most 50, as the kubelet.
func TestStatusImages(t *testing.T) {
	rt := &fakeRuntime{ready: true}
	for i := range 60 {
		rt.images = append(rt.images, corev1.ContainerImage{Names: []string{fmt.Sprintf("img-%d", i)}, SizeBytes: int64(i)})
	}
	st := NewKeeper(nil, Config{Name: "n"}, rt).status(context.Background())
	if len(st.Images) != maxImages || st.Images[0].Names[0] != "img-59" || st.Images[49].Names[0] != "img-10" {
		t.Errorf("images: %d, first %v, last %v", len(st.Images), st.Images[0].Names, st.Images[len(st.Images)-1].Names)
	}
}

func TestParseEvictionHard(t *testing.T) {
	got, err := ParseEvictionHard(DefaultEvictionHard)
	if err != nil || got.MemoryAvailable != 100<<20 || got.NodefsAvailable != 0.1 {
		t.Errorf("defaults: %+v %v", got, err)
	}
	got, err = ParseEvictionHard("nodefs.available<2Gi,imagefs.available<15%")
	if err != nil || got.NodefsAvailableBytes != 2<<30 {
		t.Errorf("quantity: %+v %v", got, err)
	}
	for _, bad := range []string{"memory.available<10%", "nodefs.available<150%", "memory.available=1Gi", "cpu.available<1", "memory.available<lots"} {
		if _, err := ParseEvictionHard(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// With an external cloud provider the node registers tainted with the IP it
// was given in the provided-node-ip annotation, and once the cloud has set
// addresses the agent's status writes keep them (posting no more than
// before: the cloud's addresses are not a change).
func TestExternalCloudProvider(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	own := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.1.0.2"}, {Type: corev1.NodeHostName, Address: "n"}}
	taint := corev1.Taint{Key: TaintExternalCloudProvider, Value: "true", Effect: corev1.TaintEffectNoSchedule}
	k := NewKeeper(kubeclienttest.FromClientset(client), Config{Name: "n", Addresses: own, Taints: []corev1.Taint{taint}, ExternalCloudProvider: true}, &fakeRuntime{ready: true})
	if err := k.register(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := client.CoreV1().Nodes().Get(ctx, "n", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Annotations[annotationProvidedNodeIP] != "10.1.0.2" || len(n.Spec.Taints) != 1 || n.Spec.Taints[0] != taint {
		t.Fatalf("registered node: annotations %v, taints %v", n.Annotations, n.Spec.Taints)
	}
	if err := k.syncStatus(ctx); err != nil {
		t.Fatal(err)
	}
	// The cloud writes its addresses.
	cloud := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.1.0.2"}, {Type: corev1.NodeExternalIP, Address: "203.0.113.7"}}
	n, _ = client.CoreV1().Nodes().Get(ctx, "n", metav1.GetOptions{})
	n.Status.Addresses = cloud
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	k.lastPosted = time.Time{} // post again now
	if err := k.syncStatus(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ = client.CoreV1().Nodes().Get(ctx, "n", metav1.GetOptions{})
	if len(n.Status.Addresses) != 2 || n.Status.Addresses[1].Address != "203.0.113.7" {
		t.Errorf("addresses after the agent's write: %v, want the cloud's", n.Status.Addresses)
	}
	if !sameIgnoringHeartbeats(k.status(ctx), k.lastStatus) {
		t.Error("the agent's next status differs from what it posted: it would post on every sync")
	}
}

// A node whose pod range comes from the control plane hands it to the
// runtime once node IPAM has set it, retries a runtime that refused it, and
// never hands it twice; a node with a range of its own never asks.
func TestPodCIDRFromNode(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	rt := &fakeRuntime{ready: true, failPodCIDR: errors.New("runtime busy")}
	k := NewKeeper(kubeclienttest.FromClientset(client), Config{Name: "n"}, rt)
	k.sync(ctx)
	if !k.registered || len(rt.podCIDRs) != 0 {
		t.Fatalf("before IPAM: registered %t, runtime told %v", k.registered, rt.podCIDRs)
	}
	n, err := client.CoreV1().Nodes().Get(ctx, "n", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.PodCIDR, n.Spec.PodCIDRs = "10.1.3.0/24", []string{"10.1.3.0/24"}
	if _, err := client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	k.sync(ctx) // the runtime refuses
	rt.failPodCIDR = nil
	for range 3 {
		k.sync(ctx)
	}
	if len(rt.podCIDRs) != 1 || rt.podCIDRs[0] != "10.1.3.0/24" {
		t.Errorf("runtime told %v, want 10.1.3.0/24 once", rt.podCIDRs)
	}

	// Deleted under the agent: registered again.
	if err := client.CoreV1().Nodes().Delete(ctx, "n", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	k.lastPosted = time.Time{}
	k.sync(ctx)
	k.sync(ctx)
	if _, err := client.CoreV1().Nodes().Get(ctx, "n", metav1.GetOptions{}); err != nil {
		t.Errorf("a deleted node is not registered again: %v", err)
	}

	static := &fakeRuntime{ready: true}
	k = NewKeeper(kubeclienttest.FromClientset(fake.NewClientset()), Config{Name: "s", PodCIDR: "10.128.0.0/24"}, static)
	k.sync(ctx)
	k.lastPosted = time.Time{}
	k.sync(ctx)
	if len(static.podCIDRs) != 0 {
		t.Errorf("a node with its own pod range told the runtime %v", static.podCIDRs)
	}
}

// Capacity others add to the Node's status (an extended resource
// advertised by a PATCH of status.capacity) survives the agent's status
// writes, and is allocatable; the agent's own entries stay the agent's.
func TestStatusKeepsForeignCapacity(t *testing.T) {
	cs := fake.NewClientset()
	rt := &fakeRuntime{ready: true}
	k := NewKeeper(kubeclienttest.FromClientset(cs), Config{Name: "n", Capacity: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceEphemeralStorage: resource.MustParse("10Gi")},
		Reserved: corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("1Gi")}}, rt)
	clock := time.Unix(1000, 0)
	k.now = func() time.Time { return clock }
	ctx := context.Background()
	k.sync(ctx)
	n, err := cs.CoreV1().Nodes().Get(ctx, "n", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Capacity["example.com/dongle"] = resource.MustParse("4")
	n.Status.Capacity[corev1.ResourceCPU] = resource.MustParse("64") // not theirs to change
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(StatusReportInterval + time.Second) // due for a write
	k.sync(ctx)
	n, _ = cs.CoreV1().Nodes().Get(ctx, "n", metav1.GetOptions{})
	for _, tc := range []struct {
		list       corev1.ResourceList
		name, want string
	}{
		{n.Status.Capacity, "example.com/dongle", "4"},
		{n.Status.Allocatable, "example.com/dongle", "4"},
		{n.Status.Capacity, "cpu", "2"},
		{n.Status.Allocatable, "ephemeral-storage", "9Gi"},
	} {
		if got := tc.list[corev1.ResourceName(tc.name)]; got.String() != tc.want {
			t.Errorf("%s = %s, want %s", tc.name, got.String(), tc.want)
		}
	}
}

// nodeInfo carries the machine's identity, as the kubelet reports it.
func TestSystemInfo(t *testing.T) {
	info := SystemInfo()
	if info.KernelVersion == "" || info.BootID == "" {
		t.Errorf("kernel %q boot ID %q: want both read from /proc", info.KernelVersion, info.BootID)
	}
	capacity := MachineCapacity(t.TempDir(), DefaultMaxPods)
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage, corev1.ResourcePods} {
		if q, ok := capacity[name]; !ok || q.Sign() <= 0 {
			t.Errorf("capacity %s = %v, want a positive amount", name, q.String())
		}
	}
	reserve := Thresholds{MemoryAvailable: 100 << 20, NodefsAvailable: 0.1}.Reserve(corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("100Gi")})
	if got := reserve[corev1.ResourceEphemeralStorage]; got.Value() != 10<<30 {
		t.Errorf("nodefs.available<10%% of 100Gi reserves %s, want 10Gi", got.String())
	}
	if got := reserve[corev1.ResourceMemory]; got.Value() != 100<<20 {
		t.Errorf("memory.available<100Mi reserves %s", got.String())
	}
}
