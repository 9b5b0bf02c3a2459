// Package kubepartsapiserver runs the real bin/kubeparts-apiserver behind a
// real kube-apiserver configured as an aggregator (front-proxy CA,
// requestheader flags, aggregator routing), with fake kubelets serving
// /metrics/resource: requests through the aggregator for authorized and
// unauthorized users, values matching what the nodes served, kubectl top and
// get components, discovery and OpenAPI, and bad input.
package kubepartsapiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	ctrl "sigs.k8s.io/controller-runtime"

	cpv1 "github.com/kubeparts/kubeparts/api/controlplane/v1alpha1"
	"github.com/kubeparts/kubeparts/apiserver/scraper/scrapertest"
	"github.com/kubeparts/kubeparts/controllers/namespace"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

// kubeparts' namespace-controller runs in-process: namespace deletion walks the
// aggregated groups too, which is what TestNamespaceDeletion looks at.
func TestMain(m *testing.M) {
	os.Exit(framework.MainWith(m, "kubepartsapiserver", &env, []framework.StartOption{framework.WithAggregator()},
		framework.WithManager(func(_ context.Context, mgr ctrl.Manager) error {
			r, err := namespace.NewReconciler(mgr.GetClient(), mgr.GetConfig())
			if err != nil {
				return err
			}
			return r.SetupWithManager(mgr, 5)
		})))
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
	env.FakeNode(t, good, "m-good")
	env.FakeNode(t, garbage, "m-garbage")
	env.FakeNode(t, hanging, "m-hanging")
	if _, err := env.Client.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "m-good", Containers: []corev1.Container{{Name: "app", Image: "x"}, {Name: "sidecar", Image: "x"}}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	env.StartKubepartsAPIServer(t)
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
	env.FakeNode(t, k, "k-node")
	env.StartKubepartsAPIServer(t)
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
	// kubectl's client-side validation reads every group's OpenAPI: broken
	// references in ours would make every `kubectl apply` in the cluster fail.
	manifest := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: validated, namespace: default}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("apply", "--validate=strict", "-f", manifest); err != nil {
		t.Errorf("kubectl apply with validation: %v\n%s", err, out)
	}
	if out, err := kubectl("explain", "components.status.health"); err != nil || !strings.Contains(out, "Healthy") {
		t.Errorf("kubectl explain components.status.health: %v\n%s", err, out)
	}
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

// TestNamespaceDeletion: kubeparts-apiserver must not be why a namespace
// deletion hangs. Namespace deletion lists every namespaced resource of every
// group, aggregated ones included (pods.metrics.k8s.io is namespaced), and
// does not finalize while a group's discovery fails, as the stock controller.
//   - Nodes that hang or fail do not matter: the server answers discovery at
//     once and is ready after one scrape cycle, bounded by the request
//     timeout, so its APIService stays available and deletion completes.
//   - With every replica down, kube-apiserver keeps serving the group's last
//     discovery document for a while; as nothing in it is deletable, deletion
//     still completes. Once the group is reported failed, deletion waits and
//     says why (NamespaceDeletionDiscoveryFailure naming metrics.k8s.io), and
//     completes when a replica is back or the APIService is removed.
func TestNamespaceDeletion(t *testing.T) {
	k := scrapertest.NewKubelet(t)
	k.Hang()
	env.FakeNode(t, k, "ns-hanging")
	s := env.StartKubepartsAPIServer(t)
	ctx := context.Background()
	deleteNamespace := func(prefix string) string {
		ns, err := env.Namespace(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "content", Namespace: ns}}
		if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		return ns
	}
	gone := func(ns string) func() error {
		return func() error {
			_, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("namespace %s still there (%v)", ns, err)
		}
	}
	ns := deleteNamespace("del-up-")
	framework.Eventually(t, 60*time.Second, "namespace deleted while every node hangs", gone(ns))

	// Down: kube-apiserver may still serve the group's last discovery
	// document (nothing of it is deletable, so nothing is sent to the dead
	// server and deletion completes), or report the group as failed, in which
	// case deletion waits and says why. Either way it completes once a
	// replica is back.
	s.Stop()
	ns = deleteNamespace("del-down-")
	framework.Eventually(t, 90*time.Second, "deletion completes or reports the unavailable group", func() error {
		n, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NamespaceDeletionDiscoveryFailure && c.Status == corev1.ConditionTrue && strings.Contains(c.Message, "metrics.k8s.io") {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", n.Status.Conditions)
	})
	env.StartKubepartsAPIServer(t)
	framework.Eventually(t, 90*time.Second, "namespace deleted once the server is back", gone(ns))
}

// TestComponentsListsOwnCopies: given its copies (as `kubeparts up` passes them
// on an HA control plane), kubeparts-apiserver's row lists each by host with
// its /readyz, in one row, where a lone server reports only itself.
func TestComponentsListsOwnCopies(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	defer ready.Close()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "[-]etcd failed", http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	s := env.StartKubepartsAPIServer(t,
		"--control-plane-component=api-extension=kubeparts-apiserver/cp-a@"+ready.URL+"/readyz",
		"--control-plane-component=api-extension=kubeparts-apiserver/cp-b@"+notReady.URL+"/readyz")
	defer s.Stop()
	admin := metricsClient(t, "")
	framework.Eventually(t, 30*time.Second, "kubeparts-apiserver's copies in components", func() error {
		raw, err := admin.Get().AbsPath("/apis/controlplane.kubeparts.dev/v1alpha1/components").DoRaw(context.Background())
		if err != nil {
			return err
		}
		var list cpv1.ComponentList
		if err := json.Unmarshal(raw, &list); err != nil {
			return err
		}
		var rows []cpv1.Component
		for _, c := range list.Items {
			if c.Name == "kubeparts-apiserver" {
				rows = append(rows, c)
			}
		}
		if len(rows) != 1 {
			return fmt.Errorf("%d kubeparts-apiserver rows, want 1", len(rows))
		}
		st := rows[0].Status
		health := map[string]string{}
		for _, in := range st.Instances {
			health[in.Name] = in.Health
		}
		if len(st.Instances) != 2 || health["cp-a"] != cpv1.Healthy || health["cp-b"] != cpv1.Unhealthy {
			return fmt.Errorf("instances %+v, want cp-a Healthy and cp-b Unhealthy", st.Instances)
		}
		// Copies of an aggregated server serve together: one ready serves the group.
		if st.Role != cpv1.RoleAPIExtension || st.Version == "" || st.Health != cpv1.Healthy || !strings.Contains(st.Message, "1 of 2 copies not healthy (cp-b:") {
			return fmt.Errorf("role %q version %q health %q %q, want api-extension, a version, Healthy saying cp-b is not", st.Role, st.Version, st.Health, st.Message)
		}
		return nil
	})
}
