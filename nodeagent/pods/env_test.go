package pods

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "x", "B": "y"}
	for in, want := range map[string]string{
		"plain":          "plain",
		"$(A)-$(B)":      "x-y",
		"$$(A)":          "$(A)", // escaped
		"$(MISSING)":     "$(MISSING)",
		"cost $5":        "cost $5",
		"open $(A":       "open $(A",
		"trailing $":     "trailing $",
		"$(A)$(A)$$$(B)": "xx$y",
	} {
		if got := expand(in, env); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFieldValue(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u", Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a/b": "c"}},
		Spec: corev1.PodSpec{NodeName: "n", ServiceAccountName: "sa"}, Status: corev1.PodStatus{PodIP: "10.0.0.2", HostIP: "192.0.2.1"}}
	for path, want := range map[string]string{
		"metadata.name": "p", "metadata.namespace": "ns", "metadata.uid": "u", "spec.nodeName": "n", "spec.serviceAccountName": "sa",
		"status.podIP": "10.0.0.2", "status.hostIP": "192.0.2.1", "metadata.labels['app']": "web", "metadata.annotations['a/b']": "c",
	} {
		if got, err := fieldValue(pod, path); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := fieldValue(pod, "spec.bogus"); err == nil {
		t.Error("unknown field path accepted")
	}
}
