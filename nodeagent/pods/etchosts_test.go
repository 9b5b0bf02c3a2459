package pods

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestSandboxConfigRefusesUserNamespaces(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{DNSPolicy: corev1.DNSNone}}
	if _, err := sandboxConfig(Node{}, pod); err != nil {
		t.Fatal(err)
	}
	pod.Spec.HostUsers = ptr.To(false)
	if _, err := sandboxConfig(Node{}, pod); err == nil || !strings.Contains(err.Error(), "hostUsers: false") {
		t.Errorf("a pod asking for a user namespace: %v", err)
	}
}

// Each container gets the agent's managed /etc/hosts, unless it mounts its own.
func TestEtcHostsMount(t *testing.T) {
	node := Node{PodDir: "/pods"}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	c := &corev1.Container{VolumeMounts: []corev1.VolumeMount{{Name: "own", MountPath: "/etc/hosts"}}}
	if m := etcHostsMount(node, pod, c); m != nil {
		t.Errorf("a container mounting its own /etc/hosts got ours: %v", m)
	}
	if m := etcHostsMount(node, pod, &corev1.Container{}); m == nil || m.ContainerPath != "/etc/hosts" {
		t.Errorf("mount %v", m)
	}
}
