package localcluster

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"k8s.io/utils/ptr"
)

// The groups kubeparts-apiserver serves, registered as metrics-server registers
// metrics.k8s.io.
var kubepartsAPIServices = []struct{ group, version string }{
	{"metrics.k8s.io", "v1beta1"},
	{"controlplane.kubeparts.dev", "v1alpha1"},
}

// registerAPIServices puts kubeparts-apiserver behind kube-apiserver: a Service
// without selector whose EndpointSlice is the host process (kube-apiserver runs
// with --enable-aggregator-routing, so no kube-proxy is needed), and one
// APIService per group with the cluster CA as caBundle (the serving
// certificate is signed by it; never insecureSkipTLSVerify).
func registerAPIServices(ctx context.Context, cfg *rest.Config, hosts []net.IP, port int, caPEM []byte) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	const ns, name = metav1.NamespaceSystem, "kubeparts-apiserver"
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(int32(port))}}},
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	ready := make([]bool, len(hosts))
	for i := range ready {
		ready[i] = true
	}
	slice := apiserverSlice(hosts, ready, port)
	if err := upsert(ctx, slice, client.DiscoveryV1().EndpointSlices(ns)); err != nil {
		return fmt.Errorf("EndpointSlice: %w", err)
	}
	agg, err := aggregator.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, g := range kubepartsAPIServices {
		as := &apiregistrationv1.APIService{
			ObjectMeta: metav1.ObjectMeta{Name: g.version + "." + g.group, Labels: map[string]string{"app.kubernetes.io/managed-by": "kubeparts-up"}},
			Spec: apiregistrationv1.APIServiceSpec{
				Service: &apiregistrationv1.ServiceReference{Namespace: ns, Name: name, Port: ptr.To[int32](443)},
				Group:   g.group, Version: g.version, CABundle: caPEM,
				GroupPriorityMinimum: 100, VersionPriority: 100,
			},
		}
		if err := upsert(ctx, as, agg.ApiregistrationV1().APIServices()); err != nil {
			return fmt.Errorf("APIService %s: %w", as.Name, err)
		}
	}
	return nil
}

// apiserverSlice is the EndpointSlice of kubeparts-apiserver's Service: one endpoint per
// host it runs on, ready or not.
func apiserverSlice(hosts []net.IP, ready []bool, port int) *discoveryv1.EndpointSlice {
	const name = "kubeparts-apiserver"
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "kubeparts-up"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for i, h := range hosts {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{h.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready[i])}})
	}
	return slice
}

// keepAPIServerEndpoints keeps each copy's Ready condition in kubeparts-apiserver's
// EndpointSlice to what its /readyz says, every second until ctx ends, as the endpoint
// controller does for a Service's pods: kube-apiserver's aggregator routes only to
// ready endpoints, so a copy on a lost control-plane host stops taking half of the
// requests for components and etcdmembers.
func keepAPIServerEndpoints(ctx context.Context, client kubernetes.Interface, hosts []net.IP, urls []string, port int, probe func(context.Context, string) (bool, string)) {
	last := make([]bool, len(hosts))
	for i := range last {
		last[i] = true // as registered
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ready := make([]bool, len(urls))
		var wg sync.WaitGroup
		for i, u := range urls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
				defer cancel()
				ready[i], _ = probe(pctx, u)
			}()
		}
		wg.Wait()
		if slices.Equal(ready, last) {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := upsert(wctx, apiserverSlice(hosts, ready, port), client.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem)); err == nil {
			last = ready
		}
		cancel()
	}
}

// object is what upsert needs of a typed client's object.
type object interface {
	metav1.Object
	comparable
}

// typedClient is the slice of a generated client upsert uses.
type typedClient[T object] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
	Get(context.Context, string, metav1.GetOptions) (T, error)
	Update(context.Context, T, metav1.UpdateOptions) (T, error)
}

// upsert creates obj or replaces the existing one with it: the files and
// code are the source of truth, as with kubectl apply.
func upsert[T object](ctx context.Context, obj T, c typedClient[T]) error {
	_, err := c.Create(ctx, obj, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := c.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	obj.SetResourceVersion(cur.GetResourceVersion())
	_, err = c.Update(ctx, obj, metav1.UpdateOptions{})
	return err
}
