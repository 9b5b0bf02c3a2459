package tainttoleration_test

import (
	"context"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	intree "k8s.io/kubernetes/pkg/scheduler/framework/plugins/tainttoleration"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/difftest"
	"github.com/kubeparts/kubeparts/scheduler-plugins/tainttoleration"
)

// TestDifferential compares Filter verdicts and normalized PreferNoSchedule
// scores with the in-tree TaintToleration.
func TestDifferential(t *testing.T) {
	difftest.RunPods(t, 3000,
		func(r *rand.Rand, pod *corev1.Pod, _ *difftest.Cluster) { difftest.AddTolerations(r, pod) },
		func(ctx context.Context, h fwk.Handle) (fwk.Plugin, error) {
			return intree.New(ctx, nil, h, feature.Features{EnableSchedulingQueueHint: true})
		},
		func(ctx context.Context, h fwk.Handle) (fwk.Plugin, error) { return tainttoleration.New(ctx, nil, h) })
}
