package framework

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Eventually polls f every 50ms until it returns nil, failing the test with f's last
// error when timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WithManager is a Main setup that runs the controllers register adds in one
// controller-runtime manager (metrics off) for the whole package.
func WithManager(register func(ctx context.Context, mgr ctrl.Manager) error) func(context.Context, *Env) error {
	return func(ctx context.Context, e *Env) error {
		mgr, err := ctrl.NewManager(e.Config, manager.Options{Metrics: metricsserver.Options{BindAddress: "0"}})
		if err != nil {
			return err
		}
		if err := register(ctx, mgr); err != nil {
			return err
		}
		go func() { _ = mgr.Start(ctx) }()
		return nil
	}
}

// WriteKubeconfig writes the harness's admin credentials for binaries under test.
func (e *Env) WriteKubeconfig(t testing.TB) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificateData: e.Config.CertData, ClientKeyData: e.Config.KeyData, Token: e.Config.BearerToken}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "c"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// WithCRDs is a Main setup that installs kubeparts' CRDs (config/crd) and waits until
// they are served.
func WithCRDs() func(context.Context, *Env) error {
	return func(_ context.Context, e *Env) error {
		root, err := RepoRoot()
		if err != nil {
			return err
		}
		_, err = envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{Paths: []string{filepath.Join(root, "config", "crd")}, ErrorIfPathMissing: true})
		return err
	}
}

// Parallel runs f(i) for every i in [0, n) on 32 workers, failing the test
// with the first error: bulk fixtures (nodes, pods) without waiting on each
// round trip.
func Parallel(t testing.TB, n int, f func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// Deployment is a Deployment of replicas pause pods labelled app=name, the shape the
// controller tests and benchmarks roll out.
func Deployment(ns, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
}

// LeaseHeldByPod waits until the kube-system Lease is held by one of the pods the
// label selector picks (leader-election identities start with the pod's name, the
// host name of an in-cluster component), reading both with kubectl, the client
// users have.
func LeaseHeldByPod(t testing.TB, timeout time.Duration, kubectl func(args ...string) (string, error), lease, selector string) {
	t.Helper()
	Eventually(t, timeout, "Lease "+lease+" held by a pod", func() error {
		holder, err := kubectl("-n", "kube-system", "get", "lease", lease, "-o", "jsonpath={.spec.holderIdentity}")
		if err != nil {
			return err
		}
		pods, err := kubectl("-n", "kube-system", "get", "pods", "-l", selector, "-o", "jsonpath={.items[*].metadata.name}")
		if err != nil {
			return err
		}
		for _, p := range strings.Fields(pods) {
			if strings.HasPrefix(holder, p) {
				return nil
			}
		}
		return fmt.Errorf("holder %q is none of %s", holder, pods)
	})
}
