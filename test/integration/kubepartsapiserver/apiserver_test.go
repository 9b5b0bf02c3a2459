// Package kubepartsapiserver runs the real bin/kubeparts-apiserver behind a
// real kube-apiserver configured as an aggregator (front-proxy CA,
// requestheader flags, aggregator routing), with fake kubelets serving
// /metrics/resource: requests through the aggregator for authorized and
// unauthorized users, values matching what the nodes served, kubectl top and
// get components, discovery and OpenAPI, and bad input.
package kubepartsapiserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/apiserver/scraper/scrapertest"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	os.Exit(framework.MainWith(m, "kubepartsapiserver", &env, []framework.StartOption{framework.WithAggregator()}))
}

// hostIP is an address of this machine other than loopback: an EndpointSlice
// may not point at 127.0.0.0/8.
func hostIP(t *testing.T) net.IP {
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

func freePort(t *testing.T, ip net.IP) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type server struct {
	url string
	log string
}

// startServer runs kubeparts-apiserver (admin identity; plain-HTTP fake
// kubelets) and points the APIServices at it. It waits for /readyz.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	ip := hostIP(t)
	port := freePort(t, ip)
	kc := env.WriteKubeconfig(t)
	logPath := filepath.Join(env.LogDir, fmt.Sprintf("kubeparts-apiserver-%s.log", strings.ReplaceAll(t.Name(), "/", "_")))
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=" + ip.String(), fmt.Sprintf("--secure-port=%d", port), "--cert-dir=" + t.TempDir(),
		"--kubelet-scheme=http", "--metric-resolution=5s", "--kubelet-request-timeout=2s", "-v=2"}, extra...)
	cmd := exec.Command(framework.Binary(t, "kubeparts-apiserver"), args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	s := &server{url: fmt.Sprintf("https://%s", net.JoinHostPort(ip.String(), fmt.Sprint(port))), log: logPath}
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	framework.Eventually(t, 30*time.Second, "kubeparts-apiserver /readyz", func() error {
		select {
		case <-done:
			t.Fatalf("kubeparts-apiserver exited; log %s", logPath)
		default:
		}
		resp, err := insecure.Get(s.url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
	register(t, ip, port)
	return s
}

// register points the APIServices at the server, as `kubeparts up` does. The
// self-signed serving certificate is trusted by skipping verification here
// only: up and config/apiserver use a real caBundle.
func register(t *testing.T, ip net.IP, port int) {
	t.Helper()
	ctx := context.Background()
	const ns, name = "kube-system", "kubeparts-apiserver"
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(int32(port))}}}}
	if _, err := env.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	_ = env.Client.DiscoveryV1().EndpointSlices(ns).Delete(ctx, name, metav1.DeleteOptions{})
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := env.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	agg, err := aggregator.NewForConfig(env.Config)
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
	framework.Eventually(t, 60*time.Second, "APIServices available", func() error {
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

// fakeNode creates a Node whose kubelet is k.
func fakeNode(t *testing.T, k *scrapertest.Kubelet, name string) {
	t.Helper()
	ctx := context.Background()
	want := k.Node(name)
	n, err := env.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubeparts.dev/test": "yes"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	n.Status = want.Status
	if _, err := env.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// feed serves two scrapes' worth of samples: the kubelet's counters advance
// by cpuSeconds over the interval between them.
func feed(k *scrapertest.Kubelet, start time.Time, cpu0, cpu1 float64, mem int64, pods func(step int) []scrapertest.PodSample) func(step int) {
	return func(step int) {
		cpu := cpu0
		if step > 0 {
			cpu = cpu1
		}
		k.SetBody(scrapertest.Body(cpu, mem, start.Add(time.Duration(step)*10*time.Second), pods(step)...))
	}
}

func metricsClient(t *testing.T, impersonate string) rest.Interface {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	if impersonate != "" {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: impersonate}
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c.Discovery().RESTClient()
}

// TestMetricsThroughAggregator: values served by the nodes come back through
// kube-apiserver, for an authorized user; an unauthorized one gets 403 from
// our SubjectAccessReview; bad input gets clear errors; a garbage or hanging
// node is left out without holding the others back.
func TestMetricsThroughAggregator(t *testing.T) {
	good, garbage, hanging := scrapertest.NewKubelet(t), scrapertest.NewKubelet(t), scrapertest.NewKubelet(t)
	start := time.Now().Add(-time.Minute)
	pods := func(step int) []scrapertest.PodSample {
		return []scrapertest.PodSample{{Namespace: "default", Name: "web", Containers: []scrapertest.ContainerSample{
			{Name: "app", CPUSeconds: 100 + float64(step)*5, MemoryBytes: 64 << 20},      // 5 s of CPU in 10 s: 500m
			{Name: "sidecar", CPUSeconds: 10 + float64(step)*1, MemoryBytes: 16 << 20}}}} // 100m
	}
	step := feed(good, start, 1000, 1020, 2<<30, pods) // node: 20 s in 10 s: 2 cores
	step(0)
	garbage.SetBody("this is not prometheus text {{{")
	hanging.Hang()
	fakeNode(t, good, "m-good")
	fakeNode(t, garbage, "m-garbage")
	fakeNode(t, hanging, "m-hanging")
	if _, err := env.Client.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "m-good", Containers: []corev1.Container{{Name: "app", Image: "x"}, {Name: "sidecar", Image: "x"}}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	startServer(t)
	// The second sample arrives after the first scrape: usage is a rate.
	framework.Eventually(t, 30*time.Second, "first scrape of the good node", func() error {
		if good.Requests() == 0 {
			return fmt.Errorf("not scraped yet")
		}
		return nil
	})
	step(1)

	admin := metricsClient(t, "")
	var nm metricsv1beta1.NodeMetrics
	framework.Eventually(t, 30*time.Second, "node metrics of m-good", func() error {
		raw, err := admin.Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes/m-good").DoRaw(context.Background())
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, &nm)
	})
	if cpu := nm.Usage.Cpu().MilliValue(); cpu != 2000 {
		t.Errorf("node cpu = %dm, want 2000m (20 core-seconds over 10 s)", cpu)
	}
	if mem := nm.Usage.Memory().Value(); mem != 2<<30 {
		t.Errorf("node memory = %d, want %d", mem, 2<<30)
	}
	if nm.Window.Duration != 10*time.Second || nm.Labels["kubeparts.dev/test"] != "yes" {
		t.Errorf("window %s labels %v, want 10s and the node's labels", nm.Window.Duration, nm.Labels)
	}

	var list metricsv1beta1.NodeMetricsList
	raw, err := admin.Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").Param("labelSelector", "kubeparts.dev/test=yes").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &list); err != nil || len(list.Items) != 1 || list.Items[0].Name != "m-good" {
		t.Errorf("node list = %s (%v), want only m-good: the garbage and hanging nodes are left out", raw, err)
	}

	var pm metricsv1beta1.PodMetrics
	raw, err = admin.Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &pm); err != nil || len(pm.Containers) != 2 {
		t.Fatalf("pod metrics %s: %v", raw, err)
	}
	for _, c := range pm.Containers {
		want := map[string]int64{"app": 500, "sidecar": 100}[c.Name]
		if got := c.Usage.Cpu().MilliValue(); got != want {
			t.Errorf("container %s cpu = %dm, want %dm", c.Name, got, want)
		}
	}

	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/apis/metrics.k8s.io/v1beta1/nodes/no-such-node", 404, `"reason":"NotFound","details":{"name":"no-such-node"`},
		{"/apis/metrics.k8s.io/v1beta1/nodes/m-hanging", 404, "not found"},
		{"/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dm-good", 400, "is not a known field selector"},
		{"/apis/metrics.k8s.io/v1beta1/nodes?watch=true", 405, ""},
	} {
		res := admin.Get().AbsPath(strings.Split(tc.path, "?")[0])
		if q := strings.SplitN(tc.path, "?", 2); len(q) == 2 {
			k, v, _ := strings.Cut(q[1], "=")
			res = res.Param(k, strings.ReplaceAll(v, "%3D", "="))
		}
		var code int
		body, err := res.Do(context.Background()).StatusCode(&code).Raw()
		if code != tc.code || (tc.want != "" && !strings.Contains(string(body)+fmt.Sprint(err), tc.want)) {
			t.Errorf("GET %s: %d %s %v, want %d mentioning %q", tc.path, code, body, err, tc.code, tc.want)
		}
	}

	// Our own authorization: a user without RBAC is refused by the
	// SubjectAccessReview we send, one bound to the reader role gets through.
	var code int
	_ = metricsClient(t, "eve").Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").Do(context.Background()).StatusCode(&code)
	if code != http.StatusForbidden {
		t.Errorf("unauthorized user: HTTP %d, want 403", code)
	}
	bind(t, "bob")
	framework.Eventually(t, 20*time.Second, "authorized user reads metrics", func() error {
		_, err := metricsClient(t, "bob").Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").DoRaw(context.Background())
		return err
	})
}

func bind(t *testing.T, user string) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test-metrics-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"metrics.k8s.io"}, Resources: []string{"nodes", "pods"}, Verbs: []string{"get", "list"}}}}
	if _, err := env.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	rb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-metrics-reader-" + user},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}}
	if _, err := env.Client.RbacV1().ClusterRoleBindings().Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// TestKubectlAndDiscovery: the real kubectl's top and get components work
// through the aggregator, and discovery and OpenAPI v2/v3 carry our groups.
func TestKubectlAndDiscovery(t *testing.T) {
	k := scrapertest.NewKubelet(t)
	start := time.Now().Add(-time.Minute)
	step := feed(k, start, 50, 55, 1<<30, func(int) []scrapertest.PodSample { return nil })
	step(0)
	fakeNode(t, k, "k-node")
	startServer(t)
	framework.Eventually(t, 30*time.Second, "first scrape", func() error {
		if k.Requests() == 0 {
			return fmt.Errorf("not scraped yet")
		}
		return nil
	})
	step(1)
	kc := env.WriteKubeconfig(t)
	kubectl := func(args ...string) (string, error) {
		out, err := exec.Command(framework.Binary(t, "kubectl"), append([]string{"--kubeconfig", kc}, args...)...).CombinedOutput()
		return string(out), err
	}
	framework.Eventually(t, 30*time.Second, "kubectl top nodes", func() error {
		out, err := kubectl("top", "nodes", "k-node", "--no-headers")
		if err != nil || !strings.Contains(out, "500m") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	out, err := kubectl("get", "components", "-o", "wide")
	if err != nil || !strings.Contains(out, "IMPLEMENTATION") || !strings.Contains(out, "kubeparts-apiserver") || !strings.Contains(out, "kube-apiserver") {
		t.Errorf("kubectl get components -o wide: %v\n%s", err, out)
	}
	if out, err := kubectl("get", "etcdmembers"); err == nil || !strings.Contains(out, "--etcd-servers") {
		t.Errorf("etcdmembers without etcd credentials: %v %s, want ServiceUnavailable naming --etcd-servers", err, out)
	}
	admin := metricsClient(t, "")
	for path, want := range map[string]string{
		"/apis":                 "controlplane.kubeparts.dev",
		"/openapi/v2":           "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics",
		"/openapi/v3":           "apis/controlplane.kubeparts.dev/v1alpha1",
		"/apis/metrics.k8s.io/": "v1beta1",
	} {
		raw, err := admin.Get().AbsPath(path).DoRaw(context.Background())
		if err != nil || !strings.Contains(string(raw), want) {
			t.Errorf("GET %s: %v, want it to contain %q", path, err, want)
		}
	}
	// Aggregated discovery (what kubectl uses) lists our resources too.
	raw, err := admin.Get().AbsPath("/apis").SetHeader("Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList").DoRaw(context.Background())
	if err != nil || !strings.Contains(string(raw), `"components"`) || !strings.Contains(string(raw), `"nodes"`) {
		t.Errorf("aggregated discovery: %v, want components and nodes", err)
	}
}
