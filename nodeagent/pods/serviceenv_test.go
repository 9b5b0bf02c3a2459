package pods

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// TestServiceEnv follows the variables the Kubernetes documentation lists
// for a Service (concepts/services-networking/service, "Environment
// variables"), the kubernetes Service's presence whatever enableServiceLinks
// says, and that headless Services and other podcri.Namespaces give none.
func TestServiceEnv(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	add := func(ns, name, ip string, ports ...corev1.ServicePort) {
		if err := idx.Add(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: ports}}); err != nil {
			t.Fatal(err)
		}
	}
	add("default", "kubernetes", "10.0.0.1", corev1.ServicePort{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP})
	add("app", "redis-primary", "10.0.0.11", corev1.ServicePort{Port: 6379, Protocol: corev1.ProtocolTCP})
	add("app", "headless", corev1.ClusterIPNone, corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolTCP})
	add("other", "elsewhere", "10.0.0.12", corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolTCP})
	kubernetes := map[string]string{
		"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "KUBERNETES_SERVICE_PORT_HTTPS": "443",
		"KUBERNETES_PORT": "tcp://10.0.0.1:443", "KUBERNETES_PORT_443_TCP": "tcp://10.0.0.1:443",
		"KUBERNETES_PORT_443_TCP_PROTO": "tcp", "KUBERNETES_PORT_443_TCP_PORT": "443", "KUBERNETES_PORT_443_TCP_ADDR": "10.0.0.1",
	}
	redis := map[string]string{
		"REDIS_PRIMARY_SERVICE_HOST": "10.0.0.11", "REDIS_PRIMARY_SERVICE_PORT": "6379",
		"REDIS_PRIMARY_PORT": "tcp://10.0.0.11:6379", "REDIS_PRIMARY_PORT_6379_TCP": "tcp://10.0.0.11:6379",
		"REDIS_PRIMARY_PORT_6379_TCP_PROTO": "tcp", "REDIS_PRIMARY_PORT_6379_TCP_PORT": "6379", "REDIS_PRIMARY_PORT_6379_TCP_ADDR": "10.0.0.11",
	}
	both := maps.Clone(kubernetes)
	maps.Copy(both, redis)
	cases := []struct {
		name  string
		ns    string
		links *bool
		want  map[string]string
	}{
		{"links on by default", "app", nil, both},
		{"links off keeps kubernetes", "app", ptr.To(false), kubernetes},
		{"another namespace", "empty", nil, kubernetes},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: tc.ns}, Spec: corev1.PodSpec{EnableServiceLinks: tc.links}}
			if got := serviceEnv(idx, pod); !maps.Equal(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}
