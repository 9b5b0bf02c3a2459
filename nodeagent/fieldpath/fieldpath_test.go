package fieldpath

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u",
			Labels:      map[string]string{"app": "web", "tier": "a\"b"},
			Annotations: map[string]string{"a/b": "c", "multi": "x\ny"}},
		Spec: corev1.PodSpec{NodeName: "n", ServiceAccountName: "sa",
			Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("100Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi"), "hugepages-2Mi": resource.MustParse("4Mi")},
			}}},
			InitContainers: []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m")},
			}}},
		},
		Status: corev1.PodStatus{PodIP: "10.0.0.2", HostIP: "192.0.2.1",
			PodIPs:  []corev1.PodIP{{IP: "10.0.0.2"}, {IP: "fd00::2"}},
			HostIPs: []corev1.HostIP{{IP: "192.0.2.1"}, {IP: "2001:db8::1"}}},
	}
}

func TestValue(t *testing.T) {
	pod := testPod()
	for path, want := range map[string]string{
		"metadata.name": "p", "metadata.namespace": "ns", "metadata.uid": "u",
		"spec.nodeName": "n", "spec.serviceAccountName": "sa",
		"status.podIP": "10.0.0.2", "status.hostIP": "192.0.2.1",
		"status.podIPs": "10.0.0.2,fd00::2", "status.hostIPs": "192.0.2.1,2001:db8::1",
		"metadata.labels['app']": "web", "metadata.labels['missing']": "",
		"metadata.annotations['a/b']": "c",
		"metadata.labels":             "app=\"web\"\ntier=\"a\\\"b\"",
		"metadata.annotations":        "a/b=\"c\"\nmulti=\"x\\ny\"",
	} {
		if got, err := Value(pod, path); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	for _, path := range []string{"spec.bogus", "metadata.name['x']", "metadata.labels['a b']", ""} {
		if got, err := Value(pod, path); err == nil {
			t.Errorf("%q accepted: %q", path, got)
		}
	}
	// Only the singular field set: the plural paths fall back to it.
	pod.Status.PodIPs, pod.Status.HostIPs = nil, nil
	if got, _ := Value(pod, "status.podIPs"); got != "10.0.0.2" {
		t.Errorf("status.podIPs without podIPs = %q", got)
	}
	if got, _ := Value(pod, "status.hostIPs"); got != "192.0.2.1" {
		t.Errorf("status.hostIPs without hostIPs = %q", got)
	}
}

func TestResourceValue(t *testing.T) {
	pod := testPod()
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi")}
	for _, tc := range []struct {
		container, res, divisor, want string
	}{
		{"c", "requests.cpu", "", "1"},         // 250m rounded up to whole cores
		{"c", "requests.cpu", "1m", "250"},     //
		{"c", "requests.cpu", "100m", "3"},     // 2.5 -> 3
		{"c", "requests.memory", "1Mi", "100"}, //
		{"c", "requests.memory", "", "104857600"},
		{"c", "requests.memory", "1G", "1"},             // 0.1048576 -> 1
		{"c", "limits.memory", "1Mi", "1024"},           //
		{"c", "limits.cpu", "", "4"},                    // unset: node allocatable
		{"c", "limits.cpu", "1m", "4000"},               //
		{"c", "limits.ephemeral-storage", "1Gi", "100"}, //
		{"c", "requests.ephemeral-storage", "", "0"},    // requests never default
		{"c", "limits.hugepages-2Mi", "1Mi", "4"},       //
		{"init", "limits.cpu", "1", "2"},                // init containers count too
	} {
		ref := &corev1.ResourceFieldSelector{Resource: tc.res}
		if tc.divisor != "" {
			ref.Divisor = resource.MustParse(tc.divisor)
		}
		got, err := ResourceValue(pod, tc.container, ref, alloc)
		if err != nil || got != tc.want {
			t.Errorf("%s %s / %q = %q, %v; want %q", tc.container, tc.res, tc.divisor, got, err, tc.want)
		}
	}
	if _, err := ResourceValue(pod, "nope", &corev1.ResourceFieldSelector{Resource: "limits.cpu"}, alloc); err == nil || err.Error() != `container "nope" not found` {
		t.Errorf("unknown container: %v", err)
	}
	if _, err := ResourceValue(pod, "c", &corev1.ResourceFieldSelector{Resource: "limits.gpu"}, alloc); err == nil {
		t.Error("unknown resource accepted")
	}
}
