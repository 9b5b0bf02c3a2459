package pods

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/nodeagent/node"
)

func evictionPod(name string, prio int32, memRequest string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name)},
		Spec: corev1.PodSpec{Priority: ptr.To(prio), Containers: []corev1.Container{{Name: "c"}}}}
	if memRequest != "" {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memRequest)}
	}
	return p
}

func memUsage(v string) containerUsage {
	return containerUsage{"c": {corev1.ResourceMemory: resource.MustParse(v), corev1.ResourceEphemeralStorage: resource.MustParse("0")}}
}

// The kubelet's ranking under memory pressure: pods over their requests
// first, then lower priority, then the larger use above the request.
func TestRankForEviction(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pods  []*corev1.Pod
		usage map[types.UID]containerUsage
		want  string
	}{
		{"over requests before under, whatever the priority",
			[]*corev1.Pod{evictionPod("under", 0, "500Mi"), evictionPod("over-high-prio", 1000, "10Mi")},
			map[types.UID]containerUsage{"under": memUsage("400Mi"), "over-high-prio": memUsage("20Mi")}, "over-high-prio under"},
		{"among pods over requests, lower priority first",
			[]*corev1.Pod{evictionPod("p1000", 1000, ""), evictionPod("p0", 0, "")},
			map[types.UID]containerUsage{"p1000": memUsage("900Mi"), "p0": memUsage("1Mi")}, "p0 p1000"},
		{"same priority: larger use above the request first",
			[]*corev1.Pod{evictionPod("small", 0, "10Mi"), evictionPod("big", 0, "10Mi"), evictionPod("besteffort", 0, "")},
			map[types.UID]containerUsage{"small": memUsage("20Mi"), "big": memUsage("300Mi"), "besteffort": memUsage("100Mi")}, "big besteffort small"},
		{"no stats: counted as no use", []*corev1.Pod{evictionPod("nostats", 0, ""), evictionPod("using", 0, "")},
			map[types.UID]containerUsage{"using": memUsage("1Mi")}, "using nostats"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rankForEviction(tc.pods, corev1.ResourceMemory, tc.usage)
			var got []string
			for _, p := range tc.pods {
				got = append(got, p.Name)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("order %v, want %s", got, tc.want)
			}
		})
	}
}

func TestAdmissionRejection(t *testing.T) {
	memory := []node.Breach{{Resource: corev1.ResourceMemory}}
	disk := []node.Breach{{Resource: corev1.ResourceEphemeralStorage}}
	both := append(append([]node.Breach{}, memory...), disk...)
	besteffort := evictionPod("be", 0, "")
	burstable := evictionPod("bu", 0, "1Mi")
	tolerating := evictionPod("tol", 0, "")
	tolerating.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	critical := evictionPod("crit", systemCriticalPriority, "")
	static := evictionPod("static", 0, "")
	static.Annotations = map[string]string{annotationSource: "file"}
	for _, tc := range []struct {
		name     string
		pod      *corev1.Pod
		breaches []node.Breach
		want     string
	}{
		{"no pressure admits", besteffort, nil, ""},
		{"memory pressure turns BestEffort away", besteffort, memory, "The node had condition: [MemoryPressure]. "},
		{"memory pressure admits Burstable", burstable, memory, ""},
		{"memory pressure admits a BestEffort pod tolerating its taint", tolerating, memory, ""},
		{"disk pressure turns everyone away", burstable, disk, "The node had condition: [DiskPressure]. "},
		{"both name both", besteffort, both, "The node had condition: [MemoryPressure, DiskPressure]. "},
		{"critical pods are admitted", critical, both, ""},
		{"static pods are admitted", static, both, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := admissionRejection(tc.pod, tc.breaches); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEvictionMessageAndStatus(t *testing.T) {
	p := evictionPod("web", 0, "10Mi")
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "quiet"})
	b := node.Breach{Signal: "memory.available", Resource: corev1.ResourceMemory, Threshold: resource.MustParse("100Mi"), Available: resource.MustParse("50Mi")}
	msg := evictionMessage(p, b, containerUsage{"c": {corev1.ResourceMemory: resource.MustParse("30Mi")}, "quiet": {corev1.ResourceMemory: resource.MustParse("0")}})
	want := "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. Container c was using 30Mi, request is 10Mi, has larger consumption of memory. "
	if msg != want {
		t.Errorf("message\n %q\nwant\n %q", msg, want)
	}
	now := func() time.Time { return time.Unix(100, 0) }
	st := withEviction(corev1.PodStatus{Phase: corev1.PodRunning}, eviction{message: msg, evicted: true}, now)
	if st.Phase != corev1.PodFailed || st.Reason != Evicted || st.Message != msg || len(st.Conditions) != 1 ||
		st.Conditions[0].Type != corev1.DisruptionTarget || st.Conditions[0].Reason != "TerminationByKubelet" {
		t.Errorf("evicted status %+v", st)
	}
	if again := withEviction(st, eviction{message: msg, evicted: true}, now); len(again.Conditions) != 1 {
		t.Errorf("DisruptionTarget added twice: %+v", again.Conditions)
	}
	if away := withEviction(corev1.PodStatus{Phase: corev1.PodPending}, eviction{message: "m"}, now); away.Phase != corev1.PodFailed || away.Reason != Evicted || away.Message != "Pod was rejected: m" || len(away.Conditions) != 0 {
		t.Errorf("turned-away status %+v, want Failed/Evicted without DisruptionTarget", away)
	}
}

// Local storage limits as the kubelet's eviction manager checks them:
// emptyDir sizeLimits first, then the pod's total against the sum of its
// containers' limits, then each container's own.
func TestStorageViolation(t *testing.T) {
	mi := func(n int64) int64 { return n << 20 }
	limit := func(v string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse(v)}}
	}
	sized := func(v string) *resource.Quantity { q := resource.MustParse(v); return &q }
	for _, tc := range []struct {
		name       string
		containers []corev1.Container
		volumes    []corev1.Volume
		use        map[string]int64
		emptyDirs  map[string]int64
		want       string
	}{
		{"under its limit", []corev1.Container{{Name: "bar", Resources: limit("5Mi")}}, nil, map[string]int64{"bar": mi(4)}, nil, ""},
		{"one container past the pod's total", []corev1.Container{{Name: "bar", Resources: limit("5Mi")}}, nil, map[string]int64{"bar": mi(10)}, nil,
			"Pod ephemeral local storage usage exceeds the total limit of containers 5Mi. "},
		{"an unlimited container: no pod total, the limited one alone", []corev1.Container{{Name: "a", Resources: limit("1Mi")}, {Name: "b"}}, nil,
			map[string]int64{"a": mi(2), "b": mi(100)}, nil, `Container a exceeded its local ephemeral storage limit "1Mi". `},
		{"emptyDirs count towards the pod", []corev1.Container{{Name: "a", Resources: limit("5Mi")}},
			[]corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			map[string]int64{"a": mi(3)}, map[string]int64{"scratch": mi(3)}, "Pod ephemeral local storage usage exceeds the total limit of containers 5Mi. "},
		{"an emptyDir past its sizeLimit first", []corev1.Container{{Name: "a", Resources: limit("1Mi")}},
			[]corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: sized("1Mi")}}}},
			map[string]int64{"a": mi(5)}, map[string]int64{"scratch": mi(2)}, `Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". `},
		{"memory-backed emptyDirs are not local storage", []corev1.Container{{Name: "a", Resources: limit("5Mi")}},
			[]corev1.Volume{{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: sized("1Mi")}}}},
			map[string]int64{"a": mi(1)}, map[string]int64{"mem": mi(50)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: tc.containers, Volumes: tc.volumes}}
			if got := storageViolation(pod, tc.use, func(v string) int64 { return tc.emptyDirs[v] }); got != tc.want {
				t.Errorf("%q, want %q", got, tc.want)
			}
			if !hasStorageLimits(pod) {
				t.Error("hasStorageLimits false for a pod with limits")
			}
		})
	}
}
