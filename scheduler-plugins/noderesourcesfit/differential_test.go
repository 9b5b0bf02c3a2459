package noderesourcesfit_test

import (
	"context"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	configv1 "k8s.io/kube-scheduler/config/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	intree "k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/difftest"
	"github.com/kubeparts/kubeparts/scheduler-plugins/noderesourcesfit"
)

// argsCase is one plugin configuration, written once in the stock (internal)
// form and once in the public v1 form our plugin reads.
type argsCase struct {
	name  string
	stock config.NodeResourcesFitArgs
	ours  configv1.NodeResourcesFitArgs
}

func argsCases() []argsCase {
	shape := []config.UtilizationShapePoint{{Utilization: 0, Score: 0}, {Utilization: 50, Score: 7}, {Utilization: 100, Score: 10}}
	shapeV1 := []configv1.UtilizationShapePoint{{Utilization: 0, Score: 0}, {Utilization: 50, Score: 7}, {Utilization: 100, Score: 10}}
	weighted := []config.ResourceSpec{{Name: "cpu", Weight: 3}, {Name: "memory", Weight: 1}, {Name: "nvidia.com/gpu", Weight: 5}, {Name: "ephemeral-storage", Weight: 2}}
	weightedV1 := []configv1.ResourceSpec{{Name: "cpu", Weight: 3}, {Name: "memory", Weight: 1}, {Name: "nvidia.com/gpu", Weight: 5}, {Name: "ephemeral-storage", Weight: 2}}
	return []argsCase{
		{
			name:  "default LeastAllocated",
			stock: config.NodeResourcesFitArgs{ScoringStrategy: &config.ScoringStrategy{Type: config.LeastAllocated, Resources: []config.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}}}},
		},
		{
			name:  "MostAllocated weighted",
			stock: config.NodeResourcesFitArgs{ScoringStrategy: &config.ScoringStrategy{Type: config.MostAllocated, Resources: weighted}},
			ours:  configv1.NodeResourcesFitArgs{ScoringStrategy: &configv1.ScoringStrategy{Type: configv1.MostAllocated, Resources: weightedV1}},
		},
		{
			name: "RequestedToCapacityRatio with ignored resources",
			stock: config.NodeResourcesFitArgs{
				IgnoredResources:      []string{"example.com/foo"},
				IgnoredResourceGroups: []string{"nvidia.com"},
				ScoringStrategy: &config.ScoringStrategy{Type: config.RequestedToCapacityRatio, Resources: append(weighted, config.ResourceSpec{Name: "example.com/foo", Weight: 1}),
					RequestedToCapacityRatio: &config.RequestedToCapacityRatioParam{Shape: shape}},
			},
			ours: configv1.NodeResourcesFitArgs{
				IgnoredResources:      []string{"example.com/foo"},
				IgnoredResourceGroups: []string{"nvidia.com"},
				ScoringStrategy: &configv1.ScoringStrategy{Type: configv1.RequestedToCapacityRatio, Resources: append(weightedV1, configv1.ResourceSpec{Name: "example.com/foo", Weight: 1}),
					RequestedToCapacityRatio: &configv1.RequestedToCapacityRatioParam{Shape: shapeV1}},
			},
		},
	}
}

// stockFeatures are the v1.36 defaults of the gates NodeResourcesFit reads.
// DRAExtendedResource is left off: the generated clusters have no DeviceClasses,
// where both plugins behave the same, and the stock scorer needs a DRA manager.
var stockFeatures = feature.Features{
	EnableInPlacePodVerticalScaling:               true,
	EnableSidecarContainers:                       true,
	EnableSchedulingQueueHint:                     true,
	EnablePodLevelResources:                       true,
	EnableInPlacePodLevelResourcesVerticalScaling: true,
}

// TestDifferential compares Filter verdicts and scores with the in-tree
// NodeResourcesFit on generated clusters and pods, for each scoring strategy.
func TestDifferential(t *testing.T) {
	ctx := context.Background()
	for _, ac := range argsCases() {
		t.Run(ac.name, func(t *testing.T) {
			difftest.Run(t, 1500, func(r *rand.Rand) (*difftest.Cluster, *corev1.Pod, []runtime.Object) {
				return difftest.RandomCluster(r, difftest.ClusterOptions{}), difftest.RandomPod(r, "pending"), nil
			}, func(t testing.TB, env *difftest.Env) (fwk.Plugin, fwk.Plugin) {
				stock, err := intree.NewFit(ctx, &ac.stock, env.Handle, stockFeatures)
				if err != nil {
					t.Fatal(err)
				}
				var args runtime.Object
				if ac.ours.ScoringStrategy != nil {
					args = difftest.Args(t, ac.ours)
				}
				ours, err := noderesourcesfit.New(ctx, args, env.Handle)
				if err != nil {
					t.Fatal(err)
				}
				return stock, ours
			})
		})
	}
}
