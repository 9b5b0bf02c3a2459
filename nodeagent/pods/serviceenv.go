package pods

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
)

// The kubernetes Service in the default namespace is in every container's
// environment, whatever enableServiceLinks says: in-cluster clients
// (client-go's rest.InClusterConfig) find kube-apiserver through it.
const (
	masterServiceNamespace = metav1.NamespaceDefault
	masterServiceName      = "kubernetes"
)

// newServiceInformer watches every Service, indexed by namespace.
func newServiceInformer(client kubeclient.Interface) cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.CoreV1().Services(metav1.NamespaceAll).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return client.CoreV1().Services(metav1.NamespaceAll).Watch(ctx, o)
		},
	}, &corev1.Service{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// serviceEnv is the kubelet's Service environment of a pod: the variables of
// every Service with a cluster IP in the pod's namespace (with
// enableServiceLinks, the default) plus the kubernetes Service's.
func serviceEnv(services cache.Indexer, pod *corev1.Pod) map[string]string {
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	chosen := map[string]*corev1.Service{}
	if links && services != nil {
		objs, _ := services.ByIndex(cache.NamespaceIndex, pod.Namespace)
		for _, o := range objs {
			s := o.(*corev1.Service)
			chosen[s.Name] = s
		}
	}
	if services != nil {
		if o, ok, _ := services.GetByKey(masterServiceNamespace + "/" + masterServiceName); ok {
			if _, taken := chosen[masterServiceName]; !taken {
				chosen[masterServiceName] = o.(*corev1.Service)
			}
		}
	}
	env := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(chosen)) {
		addServiceVars(env, chosen[name])
	}
	return env
}

// addServiceVars writes one Service's variables: NAME_SERVICE_HOST and
// NAME_SERVICE_PORT[_PORTNAME], and the Docker-link style NAME_PORT and
// NAME_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR].
func addServiceVars(env map[string]string, s *corev1.Service) {
	ip := s.Spec.ClusterIP
	if ip == "" || ip == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 {
		return
	}
	name := envName(s.Name)
	env[name+"_SERVICE_HOST"] = ip
	env[name+"_SERVICE_PORT"] = strconv.Itoa(int(s.Spec.Ports[0].Port))
	for _, p := range s.Spec.Ports {
		if p.Name != "" {
			env[name+"_SERVICE_PORT_"+envName(p.Name)] = strconv.Itoa(int(p.Port))
		}
	}
	url := func(p corev1.ServicePort) string {
		return fmt.Sprintf("%s://%s", strings.ToLower(string(p.Protocol)), net.JoinHostPort(ip, strconv.Itoa(int(p.Port))))
	}
	env[name+"_PORT"] = url(s.Spec.Ports[0])
	for _, p := range s.Spec.Ports {
		prefix := fmt.Sprintf("%s_PORT_%d_%s", name, p.Port, strings.ToUpper(string(p.Protocol)))
		env[prefix] = url(p)
		env[prefix+"_PROTO"] = strings.ToLower(string(p.Protocol))
		env[prefix+"_PORT"] = strconv.Itoa(int(p.Port))
		env[prefix+"_ADDR"] = ip
	}
}

func envName(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }
