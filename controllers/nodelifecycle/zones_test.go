package nodelifecycle

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func zoneNodes(zone string, ready, notReady int) []corev1.Node {
	var out []corev1.Node
	for i := range ready + notReady {
		status := corev1.ConditionTrue
		if i >= ready {
			status = corev1.ConditionUnknown
		}
		out = append(out, corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{corev1.LabelTopologyZone: zone}},
			Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}},
		})
	}
	return out
}

// Zone states and eviction rates as the stock controller documents them: a zone is
// fully disrupted when none of its nodes is ready, partially when more than two and at
// least --unhealthy-zone-threshold of them are not; a partially disrupted zone evicts at
// the secondary rate in a large cluster and not at all in a small one.
func TestZoneStatesAndRates(t *testing.T) {
	c := &Controller{Options: DefaultOptions()}
	for _, tc := range []struct {
		name        string
		nodes       []corev1.Node
		want        ZoneState
		clusterSize int
		rate        float32
	}{
		{"healthy", zoneNodes("z", 10, 0), ZoneNormal, 10, 0.1},
		{"two down of three is not partial (needs more than two)", zoneNodes("z", 1, 2), ZoneNormal, 3, 0.1},
		{"six of ten down: partial, small cluster stops", zoneNodes("z", 4, 6), ZonePartialDisruption, 10, 0},
		{"six of ten down: partial, large cluster slows", zoneNodes("z", 4, 6), ZonePartialDisruption, 100, 0.01},
		{"five of ten down: below 0.55", zoneNodes("z", 5, 5), ZoneNormal, 10, 0.1},
		{"all down: full", zoneNodes("z", 0, 4), ZoneFullDisruption, 4, 0.1},
	} {
		states := zoneStates(tc.nodes, c.Options.UnhealthyZoneThreshold)
		got := states["/z"]
		if got != tc.want {
			t.Errorf("%s: state %s, want %s", tc.name, got, tc.want)
		}
		if rate := c.rateFor(got, tc.clusterSize); rate != tc.rate {
			t.Errorf("%s: rate %v, want %v", tc.name, rate, tc.rate)
		}
	}
}

func TestReconcileTaintsKeepsOthersAndTimeAdded(t *testing.T) {
	added := metav1.Unix(1000, 0)
	node := &corev1.Node{
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{
			{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
			{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &added},
			{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule},
		}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}},
	}
	got := reconcileTaints(node, &unreachableNoExecute, metav1.Unix(2000, 0))
	want := map[string]bool{"dedicated:NoSchedule": true, corev1.TaintNodeUnreachable + ":NoExecute": true, corev1.TaintNodeUnreachable + ":NoSchedule": true}
	if len(got) != len(want) {
		t.Fatalf("taints %+v", got)
	}
	for _, tt := range got {
		if !want[tt.Key+":"+string(tt.Effect)] {
			t.Errorf("unexpected taint %+v", tt)
		}
		if tt.Effect == corev1.TaintEffectNoExecute && !tt.TimeAdded.Equal(&added) {
			t.Errorf("NoExecute taint re-added: timeAdded %v, want the original %v (tolerationSeconds count from it)", tt.TimeAdded, added)
		}
	}
}
