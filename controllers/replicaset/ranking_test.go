package replicaset

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// podBuilder builds fixture pods: pod("a").node("n1").running().ready(since).obj().
type podBuilder struct{ p *corev1.Pod }

func pod(name string) *podBuilder {
	return &podBuilder{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: "ns", UID: types.UID("uid-" + name), CreationTimestamp: metav1.NewTime(now.Add(-time.Hour)),
	}, Status: corev1.PodStatus{Phase: corev1.PodPending}}}
}
func (b *podBuilder) node(n string) *podBuilder { b.p.Spec.NodeName = n; return b }
func (b *podBuilder) running() *podBuilder      { b.p.Status.Phase = corev1.PodRunning; return b }
func (b *podBuilder) phase(ph corev1.PodPhase) *podBuilder {
	b.p.Status.Phase = ph
	return b
}
func (b *podBuilder) ready(since time.Duration) *podBuilder {
	b.p.Status.Conditions = append(b.p.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-since)),
	})
	return b
}
func (b *podBuilder) cost(c string) *podBuilder {
	if b.p.Annotations == nil {
		b.p.Annotations = map[string]string{}
	}
	b.p.Annotations[PodDeletionCostAnnotation] = c
	return b
}
func (b *podBuilder) restarts(n int32) *podBuilder {
	b.p.Status.ContainerStatuses = append(b.p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "c", RestartCount: n})
	return b
}
func (b *podBuilder) created(ago time.Duration) *podBuilder {
	b.p.CreationTimestamp = metav1.NewTime(now.Add(-ago))
	return b
}
func (b *podBuilder) label(k, v string) *podBuilder {
	if b.p.Labels == nil {
		b.p.Labels = map[string]string{}
	}
	b.p.Labels[k] = v
	return b
}
func (b *podBuilder) obj() *corev1.Pod { return b.p }

func names(pods []*corev1.Pod) string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return strings.Join(out, ",")
}

// TestPodsToDelete: each case differs in one criterion, the first pod of the expected
// order being the one the stock controller deletes first.
func TestPodsToDelete(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pods    []*corev1.Pod
		related []*corev1.Pod // defaults to pods
		n       int
		want    string
	}{
		{"unscheduled first", []*corev1.Pod{pod("on").node("n1").running().ready(time.Hour).obj(), pod("off").obj()}, nil, 1, "off"},
		{"pending before unknown before running", []*corev1.Pod{
			pod("run").node("n1").running().obj(), pod("unk").node("n2").phase(corev1.PodUnknown).obj(), pod("pend").node("n3").obj(),
		}, nil, 2, "pend,unk"},
		{"not ready before ready", []*corev1.Pod{pod("r").node("n1").running().ready(time.Hour).obj(), pod("nr").node("n2").running().obj()}, nil, 1, "nr"},
		{"lower deletion cost first, even when ready", []*corev1.Pod{
			pod("c100").node("n1").running().ready(time.Hour).cost("100").obj(),
			pod("c-5").node("n2").running().ready(time.Hour).cost("-5").obj(),
			pod("c0").node("n3").running().ready(time.Hour).obj(),
		}, nil, 2, "c-5,c0"},
		{"invalid cost counts as zero", []*corev1.Pod{
			pod("bad").node("n1").running().ready(time.Hour).cost("lots").obj(),
			pod("neg").node("n2").running().ready(time.Hour).cost("-1").obj(),
		}, nil, 1, "neg"},
		{"doubled-up node first, counting related pods", []*corev1.Pod{
			pod("alone").node("n1").running().ready(time.Hour).obj(), pod("crowded").node("n2").running().ready(time.Hour).obj(),
		}, []*corev1.Pod{pod("alone").node("n1").running().obj(), pod("crowded").node("n2").running().obj(), pod("sibling").node("n2").running().obj()}, 1, "crowded"},
		{"ready more recently first", []*corev1.Pod{
			pod("old").node("n1").running().ready(10 * time.Hour).obj(), pod("new").node("n2").running().ready(time.Minute).obj(),
		}, nil, 1, "new"},
		{"more restarts first", []*corev1.Pod{
			pod("calm").node("n1").running().restarts(1).obj(), pod("flappy").node("n2").running().restarts(7).obj(),
		}, nil, 1, "flappy"},
		{"newer first", []*corev1.Pod{
			pod("older").node("n1").running().created(48 * time.Hour).obj(), pod("newer").node("n2").running().created(time.Minute).obj(),
		}, nil, 1, "newer"},
		{"same log bucket falls back to UID", []*corev1.Pod{
			pod("b").node("n1").running().created(100 * time.Second).obj(), pod("a").node("n2").running().created(101 * time.Second).obj(),
		}, nil, 1, "a"},
		{"n above len returns all", []*corev1.Pod{pod("x").obj()}, nil, 3, "x"},
		{"n zero returns none", []*corev1.Pod{pod("x").obj()}, nil, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			related := tc.related
			if related == nil {
				related = tc.pods
			}
			if got := names(podsToDelete(tc.pods, related, tc.n, now)); got != tc.want {
				t.Fatalf("deleted %q, want %q", got, tc.want)
			}
		})
	}
}
