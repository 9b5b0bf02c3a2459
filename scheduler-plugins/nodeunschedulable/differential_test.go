package nodeunschedulable_test

import (
	"context"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	intree "k8s.io/kubernetes/pkg/scheduler/framework/plugins/nodeunschedulable"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/difftest"
	"github.com/kubeparts/kubeparts/scheduler-plugins/nodeunschedulable"
)

// TestDifferential compares Filter verdicts on cordoned and schedulable nodes
// with the in-tree NodeUnschedulable.
func TestDifferential(t *testing.T) {
	ctx := context.Background()
	difftest.Run(t, 2000, func(r *rand.Rand) (*difftest.Cluster, *corev1.Pod, []runtime.Object) {
		c := difftest.RandomCluster(r, difftest.ClusterOptions{})
		pod := difftest.RandomPod(r, "pending")
		difftest.AddTolerations(r, pod)
		return c, pod, nil
	}, func(t testing.TB, env *difftest.Env) (fwk.Plugin, fwk.Plugin) {
		stock, err := intree.New(ctx, nil, env.Handle, feature.Features{EnableSchedulingQueueHint: true})
		if err != nil {
			t.Fatal(err)
		}
		ours, err := nodeunschedulable.New(ctx, nil, env.Handle)
		if err != nil {
			t.Fatal(err)
		}
		return stock, ours
	})
}
