package pods

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// QoS classes as the API computes them, and the cgroup each class's pods go in.
func TestQoSCgroupParent(t *testing.T) {
	res := func(req, lim string) corev1.ResourceRequirements {
		r := corev1.ResourceRequirements{}
		if req != "" {
			r.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(req), corev1.ResourceMemory: resource.MustParse("64Mi")}
		}
		if lim != "" {
			r.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(lim), corev1.ResourceMemory: resource.MustParse("64Mi")}
		}
		return r
	}
	tests := []struct {
		name      string
		resources []corev1.ResourceRequirements
		recorded  corev1.PodQOSClass
		want      string
	}{
		{"nothing requested", []corev1.ResourceRequirements{{}}, "", "/kp/besteffort/podu"},
		{"requests equal limits", []corev1.ResourceRequirements{res("100m", "100m")}, "", "/kp/podu"},
		{"limits only (requests default to them)", []corev1.ResourceRequirements{res("", "100m")}, "", "/kp/podu"},
		{"requests below limits", []corev1.ResourceRequirements{res("100m", "200m")}, "", "/kp/burstable/podu"},
		{"one container without limits", []corev1.ResourceRequirements{res("100m", "100m"), {}}, "", "/kp/burstable/podu"},
		{"the API server's class wins", []corev1.ResourceRequirements{{}}, corev1.PodQOSGuaranteed, "/kp/podu"},
	}
	for _, tt := range tests {
		pod := &corev1.Pod{}
		pod.UID = "u"
		pod.Status.QOSClass = tt.recorded
		for _, r := range tt.resources {
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Resources: r})
		}
		if got, fs := (Node{CgroupParent: "/kp"}).podCgroup(pod); got != tt.want || fs != tt.want {
			t.Errorf("%s: %s (path %s), want %s", tt.name, got, fs, tt.want)
		}
	}
}

// With the systemd driver the runtime is told the pod's slice, named as the
// kubelet's systemd cgroup manager names it (dashes of the UID escaped), and
// the limits go to the path systemd gives that slice.
func TestPodCgroupSystemd(t *testing.T) {
	burstable := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}}}
	burstable.UID = "1234-5678"
	guaranteed := burstable.DeepCopy()
	guaranteed.Status.QOSClass = corev1.PodQOSGuaranteed
	for _, tc := range []struct {
		parent        string
		pod           *corev1.Pod
		slice, fsPath string
	}{
		{"kubepods", burstable, "kubepods-burstable-pod1234_5678.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_5678.slice"},
		{"/kubepods", guaranteed, "kubepods-pod1234_5678.slice", "/kubepods.slice/kubepods-pod1234_5678.slice"},
		{"/kubeparts-ab/kubepods", burstable, "kubeparts_ab-kubepods-burstable-pod1234_5678.slice",
			"/kubeparts_ab.slice/kubeparts_ab-kubepods.slice/kubeparts_ab-kubepods-burstable.slice/kubeparts_ab-kubepods-burstable-pod1234_5678.slice"},
	} {
		n := Node{CgroupParent: tc.parent, CgroupDriver: CgroupDriverSystemd}
		if slice, fsPath := n.podCgroup(tc.pod); slice != tc.slice || fsPath != tc.fsPath {
			t.Errorf("parent %s: slice %s path %s, want %s and %s", tc.parent, slice, fsPath, tc.slice, tc.fsPath)
		}
	}
	if got := (Node{CgroupParent: "kubepods", CgroupDriver: CgroupDriverSystemd}).qosCgroupPath("besteffort"); got != "/kubepods.slice/kubepods-besteffort.slice" {
		t.Errorf("besteffort QoS cgroup %s", got)
	}
	if got := (Node{CgroupParent: "/kp"}).qosCgroupPath("burstable"); got != "/kp/burstable" {
		t.Errorf("cgroupfs burstable QoS cgroup %s", got)
	}
}
