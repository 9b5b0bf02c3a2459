package framework

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/apiserver/scraper/scrapertest"
)

// hostIP is an address of this machine other than loopback: an EndpointSlice
// may not point at 127.0.0.0/8.
func hostIP(t testing.TB) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			return ipn.IP
		}
	}
	t.Skip("no non-loopback IPv4 address to serve an APIService on")
	return nil
}

func freePort(t testing.TB, ip net.IP) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// KubepartsAPIServer is a running bin/kubeparts-apiserver.
type KubepartsAPIServer struct {
	URL, Log string
	Pid      int
	// Stop kills it (also done when the test ends).
	Stop func()
}

// StartKubepartsAPIServer runs kubeparts-apiserver (admin identity, plain-HTTP
// fake kubelets) on a non-loopback address and points its APIServices at it,
// as `kubeparts up` does; it returns once /readyz passes and the APIServices
// are Available. The control plane must be started WithAggregator.
func (e *Env) StartKubepartsAPIServer(t testing.TB, extra ...string) *KubepartsAPIServer {
	t.Helper()
	ip := hostIP(t)
	port := freePort(t, ip)
	kc := e.WriteKubeconfig(t)
	args := append([]string{"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=" + ip.String(), fmt.Sprintf("--secure-port=%d", port), "--cert-dir=" + t.TempDir(),
		"--kubelet-scheme=http", "--metric-resolution=5s", "--kubelet-request-timeout=2s", "-v=2"}, extra...)
	proc := e.Run(t, "kubeparts-apiserver", args...)
	s := &KubepartsAPIServer{URL: fmt.Sprintf("https://%s", net.JoinHostPort(ip.String(), fmt.Sprint(port))), Log: proc.Log, Pid: proc.Pid, Stop: proc.Stop}
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	Eventually(t, 30*time.Second, "kubeparts-apiserver /readyz", func() error {
		select {
		case <-proc.Done:
			t.Fatalf("kubeparts-apiserver exited; log %s", proc.Log)
		default:
		}
		resp, err := insecure.Get(s.URL + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
	e.register(t, ip, port)
	return s
}

// register points the APIServices at the server, as `kubeparts up` does. The
// self-signed serving certificate is trusted by skipping verification here
// only: up and config/apiserver use a real caBundle.
func (e *Env) register(t testing.TB, ip net.IP, port int) {
	t.Helper()
	ctx := context.Background()
	const ns, name = "kube-system", "kubeparts-apiserver"
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(int32(port))}}}}
	if _, err := e.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	_ = e.Client.DiscoveryV1().EndpointSlices(ns).Delete(ctx, name, metav1.DeleteOptions{})
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := e.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	agg, err := aggregator.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, gv := range [][2]string{{"metrics.k8s.io", "v1beta1"}, {"controlplane.kubeparts.dev", "v1alpha1"}} {
		name := gv[1] + "." + gv[0]
		_ = agg.ApiregistrationV1().APIServices().Delete(ctx, name, metav1.DeleteOptions{})
		as := &apiregistrationv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: apiregistrationv1.APIServiceSpec{
			Service: &apiregistrationv1.ServiceReference{Namespace: ns, Name: "kubeparts-apiserver", Port: ptr.To[int32](443)},
			Group:   gv[0], Version: gv[1], InsecureSkipTLSVerify: true, GroupPriorityMinimum: 100, VersionPriority: 100,
		}}
		if _, err := agg.ApiregistrationV1().APIServices().Create(ctx, as, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, 60*time.Second, "APIServices available", func() error {
		for _, n := range []string{"v1beta1.metrics.k8s.io", "v1alpha1.controlplane.kubeparts.dev"} {
			as, err := agg.ApiregistrationV1().APIServices().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return err
			}
			ok := false
			for _, c := range as.Status.Conditions {
				ok = ok || c.Type == apiregistrationv1.Available && c.Status == apiregistrationv1.ConditionTrue
			}
			if !ok {
				return fmt.Errorf("%s not available: %+v", n, as.Status.Conditions)
			}
		}
		return nil
	})
}

// FakeNode creates a Node whose kubelet is k (labelled kubeparts.dev/test=yes)
// and removes it when the test ends.
func (e *Env) FakeNode(t testing.TB, k *scrapertest.Kubelet, name string) {
	t.Helper()
	ctx := context.Background()
	want := k.Node(name)
	n, err := e.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubeparts.dev/test": "yes"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	n.Status = want.Status
	if _, err := e.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
