// Package namespace tests kubeparts' namespace-controller against a real kube-apiserver.
package namespace

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kubeparts/kubeparts/controllers/namespace"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, "namespace", &env, framework.WithManager(func(_ context.Context, mgr ctrl.Manager) error {
		r, err := namespace.NewReconciler(mgr.GetClient(), mgr.GetConfig())
		if err != nil {
			return err
		}
		return r.SetupWithManager(mgr, 10)
	})))
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	framework.Eventually(t, 60*time.Second, what, f)
}

func gone(t *testing.T, ns string) func() error {
	return func() error {
		_, err := env.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("namespace %s still there (%v)", ns, err)
	}
}

func condition(t *testing.T, ns string, ct corev1.NamespaceConditionType) corev1.NamespaceCondition {
	t.Helper()
	got, err := env.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got.Status.Conditions {
		if c.Type == ct {
			return c
		}
	}
	return corev1.NamespaceCondition{}
}

func podSpec() corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}}
}

func TestDeleteEmptiesAndFinalizes(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "full-")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: podSpec()}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "svc"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "namespace removed", gone(t, ns))
	// Namespaced objects outlive their namespace in etcd unless the controller removed them.
	cms, err := env.Client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(cms.Items) != 0 {
		t.Fatalf("configmaps left: %v %v", len(cms.Items), err)
	}
}

// Pods go first: while a pod is held by a finalizer, the rest stays, and the conditions
// say what is blocking.
func TestPodsFirstAndBlockingConditions(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "held-")
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"kubeparts.dev/hold"}}, Spec: podSpec()}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "config"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "blocking conditions", func() error {
		c := condition(t, ns, corev1.NamespaceContentRemaining)
		f := condition(t, ns, corev1.NamespaceFinalizersRemaining)
		if c.Status != corev1.ConditionTrue || c.Reason != "SomeResourcesRemain" || !strings.Contains(c.Message, "pods has 1 resource instances") {
			return fmt.Errorf("ContentRemaining %+v", c)
		}
		if f.Status != corev1.ConditionTrue || !strings.Contains(f.Message, "kubeparts.dev/hold in 1 resource instances") {
			return fmt.Errorf("FinalizersRemaining %+v", f)
		}
		return nil
	})
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "config", metav1.GetOptions{}); err != nil {
		t.Fatalf("configmap deleted while a pod was still terminating: %v", err)
	}
	if _, err := env.Client.CoreV1().Pods(ns).Patch(ctx, "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "namespace removed after the pod let go", gone(t, ns))
}

// An aggregated API that does not answer discovery is reported, and keeps the namespace
// until it is fixed or removed; then deletion completes.
func TestUnavailableAggregatedAPIIsReported(t *testing.T) {
	ctx := context.Background()
	agg, err := aggregator.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	svc := &apiregistrationv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: "v1.broken.kubeparts.dev"},
		Spec: apiregistrationv1.APIServiceSpec{
			Group: "broken.kubeparts.dev", Version: "v1", GroupPriorityMinimum: 100, VersionPriority: 100,
			Service:               &apiregistrationv1.ServiceReference{Namespace: "default", Name: "nowhere"},
			InsecureSkipTLSVerify: true,
		},
	}
	if _, err := agg.ApiregistrationV1().APIServices().Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	removed := false
	removeAPI := func() {
		if !removed {
			removed = true
			_ = agg.ApiregistrationV1().APIServices().Delete(ctx, svc.Name, metav1.DeleteOptions{})
		}
	}
	t.Cleanup(removeAPI)
	ns, err := env.Namespace(ctx, "blocked-")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "discovery failure reported", func() error {
		c := condition(t, ns, corev1.NamespaceDeletionDiscoveryFailure)
		if c.Status != corev1.ConditionTrue || c.Reason != "DiscoveryFailed" || !strings.Contains(c.Message, "broken.kubeparts.dev/v1") {
			return fmt.Errorf("DiscoveryFailure %+v", c)
		}
		return nil
	})
	if err := gone(t, ns)(); err == nil {
		t.Fatal("namespace finalized although an API's objects could not be checked")
	}
	removeAPI()
	eventually(t, "namespace removed once the API is gone", gone(t, ns))
}
