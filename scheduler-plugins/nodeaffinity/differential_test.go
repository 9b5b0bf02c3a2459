package nodeaffinity_test

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
	intree "k8s.io/kubernetes/pkg/scheduler/framework/plugins/nodeaffinity"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/difftest"
	"github.com/kubeparts/kubeparts/scheduler-plugins/nodeaffinity"
)

// TestDifferential compares Filter (with PreFilter's node-name shortcut) and
// normalized scores with the in-tree NodeAffinity, with and without a
// profile-level addedAffinity.
func TestDifferential(t *testing.T) {
	added := &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelTopologyZone, Operator: corev1.NodeSelectorOpIn, Values: []string{"zone-a", "zone-b"}}}},
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpExists}}},
		}},
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
			{Weight: 7, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "gpu", Operator: corev1.NodeSelectorOpIn, Values: []string{"true"}}}}},
		},
	}
	for _, tc := range []struct {
		name  string
		added *corev1.NodeAffinity
	}{{"pod affinity only", nil}, {"with addedAffinity", added}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			difftest.Run(t, 3000, func(r *rand.Rand) (*difftest.Cluster, *corev1.Pod, []runtime.Object) {
				c := difftest.RandomCluster(r, difftest.ClusterOptions{})
				pod := difftest.RandomPod(r, "pending")
				difftest.AddNodeAffinity(r, pod, len(c.Nodes))
				return c, pod, nil
			}, func(t testing.TB, env *difftest.Env) (fwk.Plugin, fwk.Plugin) {
				stock, err := intree.New(ctx, &config.NodeAffinityArgs{AddedAffinity: tc.added}, env.Handle, feature.Features{EnableSchedulingQueueHint: true})
				if err != nil {
					t.Fatal(err)
				}
				var args runtime.Object
				if tc.added != nil {
					args = difftest.Args(t, configv1.NodeAffinityArgs{AddedAffinity: tc.added})
				}
				ours, err := nodeaffinity.New(ctx, args, env.Handle)
				if err != nil {
					t.Fatal(err)
				}
				return stock, ours
			})
		})
	}
}
