// Package integration holds tests that need a real kube-apiserver and etcd but no node;
// see test/README.md.
package integration

import (
	"context"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) { os.Exit(framework.Main(m, "integration", &env)) }

// The stock binaries must carry the pinned version: unstamped builds report
// v0.0.0-master and break version-skew checks (DESIGN.md §5).
func TestAPIServerReportsPinnedVersion(t *testing.T) {
	v, err := env.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.36.3" || v.Major != "1" || v.Minor != "36" {
		t.Fatalf("server version = %s (major %q minor %q), want v1.36.3", v.GitVersion, v.Major, v.Minor)
	}
}

// The harness must behave like a real apiserver, optimistic concurrency included: the
// controllers built on it rely on a stale write failing with a Conflict.
func TestHarnessEnforcesOptimisticConcurrency(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "harness-"}}
	ns, err := env.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cms := env.Client.CoreV1().ConfigMaps(ns.Name)
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}, Data: map[string]string{"k": "1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stale := cm.DeepCopy()
	cm.Data["k"] = "2"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	stale.Data["k"] = "3"
	if _, err := cms.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("update with a stale resourceVersion: err = %v, want Conflict", err)
	}
	got, err := cms.Get(ctx, "cm", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "2" {
		t.Fatalf("after the conflict: %v, %v; want k=2", got.Data, err)
	}
}
