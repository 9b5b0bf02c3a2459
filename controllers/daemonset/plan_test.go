package daemonset

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func dsWith(strategy appsv1.DaemonSetUpdateStrategyType, surge, unavailable int32) *appsv1.DaemonSet {
	s, u := intstr.FromInt32(surge), intstr.FromInt32(unavailable)
	ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: strategy}}}
	if strategy == appsv1.RollingUpdateDaemonSetStrategyType {
		ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxSurge: &s, MaxUnavailable: &u}
	}
	return ds
}

func daemonPod(name, hash string, readyFor time.Duration, phase corev1.PodPhase) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{appsv1.DefaultDaemonSetUniqueLabelKey: hash}},
		Status: corev1.PodStatus{Phase: phase}}
	if readyFor > 0 {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-readyFor))}}
	}
	return p
}

func threeNodes() []corev1.Node {
	return []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, {ObjectMeta: metav1.ObjectMeta{Name: "b"}}, {ObjectMeta: metav1.ObjectMeta{Name: "c"}}}
}

func TestPlanRollingSteps(t *testing.T) {
	oldEverywhere := func() map[string][]*corev1.Pod {
		return map[string][]*corev1.Pod{
			"a": {daemonPod("a-old", "old", time.Hour, corev1.PodRunning)},
			"b": {daemonPod("b-old", "old", time.Hour, corev1.PodRunning)},
			"c": {daemonPod("c-old", "old", time.Hour, corev1.PodRunning)},
		}
	}
	for _, tc := range []struct {
		name               string
		ds                 *appsv1.DaemonSet
		pods               map[string][]*corev1.Pod
		creates, removes   int
		desired, available int32
	}{
		{"maxUnavailable 1 deletes one old pod", dsWith(appsv1.RollingUpdateDaemonSetStrategyType, 0, 1), oldEverywhere(), 0, 1, 3, 3},
		{"maxUnavailable 2 deletes two", dsWith(appsv1.RollingUpdateDaemonSetStrategyType, 0, 2), oldEverywhere(), 0, 2, 3, 3},
		{"maxSurge 1 adds one new pod first", dsWith(appsv1.RollingUpdateDaemonSetStrategyType, 1, 0), oldEverywhere(), 1, 0, 3, 3},
		{"OnDelete replaces nothing", dsWith(appsv1.OnDeleteDaemonSetStrategyType, 0, 0), oldEverywhere(), 0, 0, 3, 3},
		{"surge pod available: old goes", dsWith(appsv1.RollingUpdateDaemonSetStrategyType, 1, 0), map[string][]*corev1.Pod{
			"a": {daemonPod("a-old", "old", time.Hour, corev1.PodRunning), daemonPod("a-new", "cur", time.Minute, corev1.PodRunning)},
			"b": {daemonPod("b-new", "cur", time.Minute, corev1.PodRunning)}, "c": {daemonPod("c-new", "cur", time.Minute, corev1.PodRunning)},
		}, 0, 1, 3, 3},
		{"failed pod is removed first (replaced next sync), missing node gets one", dsWith(appsv1.RollingUpdateDaemonSetStrategyType, 0, 1), map[string][]*corev1.Pod{
			"a": {daemonPod("a-failed", "cur", 0, corev1.PodFailed)}, "b": {daemonPod("b-new", "cur", time.Minute, corev1.PodRunning)},
		}, 1, 1, 3, 1},
		{"pod for a vanished node is removed", dsWith(appsv1.RollingUpdateDaemonSetStrategyType, 0, 1), map[string][]*corev1.Pod{
			"a": {daemonPod("a", "cur", time.Minute, corev1.PodRunning)}, "b": {daemonPod("b", "cur", time.Minute, corev1.PodRunning)},
			"c": {daemonPod("c", "cur", time.Minute, corev1.PodRunning)}, "gone": {daemonPod("g", "cur", time.Minute, corev1.PodRunning)},
		}, 0, 1, 3, 3},
		{"two current pods on a node: the newer goes", dsWith(appsv1.RollingUpdateDaemonSetStrategyType, 0, 1), map[string][]*corev1.Pod{
			"a": {daemonPod("a1", "cur", time.Minute, corev1.PodRunning), daemonPod("a2", "cur", time.Minute, corev1.PodRunning)},
			"b": {daemonPod("b", "cur", time.Minute, corev1.PodRunning)}, "c": {daemonPod("c", "cur", time.Minute, corev1.PodRunning)},
		}, 0, 1, 3, 3},
	} {
		p := planFor(tc.ds, threeNodes(), tc.pods, "cur", now)
		if len(p.create) != tc.creates || len(p.remove) != tc.removes || p.desired != tc.desired || p.available != tc.available {
			t.Errorf("%s: create %v remove %d desired %d available %d; want %d/%d/%d/%d", tc.name, p.create, len(p.remove), p.desired, p.available, tc.creates, tc.removes, tc.desired, tc.available)
		}
	}
}

func TestPlacement(t *testing.T) {
	ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{NodeSelector: map[string]string{"role": "edge"}}}}}
	node := func(labels map[string]string, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
	}
	edge := map[string]string{"role": "edge"}
	for _, tc := range []struct {
		name      string
		node      *corev1.Node
		run, cont bool
	}{
		{"selected", node(edge), true, true},
		{"not selected", node(nil), false, false},
		{"untolerated NoSchedule: keep but do not place", node(edge, corev1.Taint{Key: "x", Effect: corev1.TaintEffectNoSchedule}), false, true},
		{"untolerated NoExecute: go", node(edge, corev1.Taint{Key: "x", Effect: corev1.TaintEffectNoExecute}), false, false},
		{"unreachable NoExecute: tolerated by default", node(edge, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}), true, true},
		{"cordoned: tolerated by default", node(edge, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}), true, true},
		{"network unavailable: only hostNetwork daemons", node(edge, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}), false, true},
	} {
		run, cont := placement(ds, tc.node)
		if run != tc.run || cont != tc.cont {
			t.Errorf("%s: run %v continue %v, want %v %v", tc.name, run, cont, tc.run, tc.cont)
		}
	}
	ds.Spec.Template.Spec.HostNetwork = true
	if run, _ := placement(ds, node(edge, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule})); !run {
		t.Error("hostNetwork daemon kept off a node whose network is not ready")
	}
}

func TestPinToNode(t *testing.T) {
	spec := &corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"z1"}}},
			MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"other"}}}}},
	}}}}
	pinToNode(spec, "n1")
	term := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0]
	if len(term.MatchExpressions) != 1 || len(term.MatchFields) != 1 || term.MatchFields[0].Values[0] != "n1" {
		t.Fatalf("term %+v: want the user's expression kept and metadata.name replaced by n1", term)
	}
	if got := targetNode(&corev1.Pod{Spec: *spec}); got != "n1" {
		t.Fatalf("targetNode = %q", got)
	}
}

func TestFencepostsOfDesiredDaemons(t *testing.T) {
	half, quarter := intstr.FromString("50%"), intstr.FromString("25%")
	ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
		Type: appsv1.RollingUpdateDaemonSetStrategyType, RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &half, MaxSurge: &quarter}}}}
	for _, tc := range []struct {
		desired        int
		surge, unavail int32
	}{{4, 1, 2}, {5, 2, 3}, {1, 1, 1}, {0, 0, 1}} {
		s, u := fenceposts(ds, tc.desired)
		if s != tc.surge || u != tc.unavail {
			t.Errorf("desired %d: surge %d unavailable %d, want %d %d (both round up)", tc.desired, s, u, tc.surge, tc.unavail)
		}
	}
}

// A daemon on a node that became NoSchedule-tainted stays, counted as misscheduled.
func TestPlanKeepsNoScheduleDaemonAsMisscheduled(t *testing.T) {
	nodes := threeNodes()
	nodes[0].Spec.Taints = []corev1.Taint{{Key: "dedicated", Effect: corev1.TaintEffectNoSchedule}}
	pods := map[string][]*corev1.Pod{
		"a": {daemonPod("a", "cur", time.Minute, corev1.PodRunning)},
		"b": {daemonPod("b", "cur", time.Minute, corev1.PodRunning)},
		"c": {daemonPod("c", "cur", time.Minute, corev1.PodRunning)},
	}
	p := planFor(dsWith(appsv1.RollingUpdateDaemonSetStrategyType, 0, 1), nodes, pods, "cur", now)
	if len(p.remove) != 0 || len(p.create) != 0 || p.misscheduled != 1 || p.desired != 2 || p.current != 2 {
		t.Fatalf("plan %+v: want the tainted node's daemon kept and counted misscheduled", p)
	}
}
