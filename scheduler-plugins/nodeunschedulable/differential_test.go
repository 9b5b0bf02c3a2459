package nodeunschedulable_test

import (
	"context"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	intree "k8s.io/kubernetes/pkg/scheduler/framework/plugins/nodeunschedulable"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/difftest"
	"github.com/kubeparts/kubeparts/scheduler-plugins/nodeunschedulable"
)

// TestDifferential compares Filter verdicts on cordoned and schedulable nodes
// with the in-tree NodeUnschedulable.
func TestDifferential(t *testing.T) {
	difftest.RunPods(t, 2000,
		func(r *rand.Rand, pod *corev1.Pod, _ *difftest.Cluster) { difftest.AddTolerations(r, pod) },
		func(ctx context.Context, h fwk.Handle) (fwk.Plugin, error) {
			return intree.New(ctx, nil, h, feature.Features{EnableSchedulingQueueHint: true})
		},
		func(ctx context.Context, h fwk.Handle) (fwk.Plugin, error) { return nodeunschedulable.New(ctx, nil, h) })
}
