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
		if got := podCgroupParent("/kp", pod); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}
