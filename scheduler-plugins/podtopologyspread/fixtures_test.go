package podtopologyspread

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	configv1 "k8s.io/kube-scheduler/config/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/difftest"
)

// nodeBuilder and podBuilder keep table cases short.
type nodeBuilder struct{ n *corev1.Node }

func mkNode(name string) nodeBuilder {
	return nodeBuilder{&corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: name, UID: types.UID("uid-" + name),
		Labels: map[string]string{corev1.LabelHostname: name},
	}}}
}

func (b nodeBuilder) zone(z string) nodeBuilder { return b.label(corev1.LabelTopologyZone, z) }
func (b nodeBuilder) label(k, v string) nodeBuilder {
	b.n.Labels[k] = v
	return b
}
func (b nodeBuilder) taint(k string, e corev1.TaintEffect) nodeBuilder {
	b.n.Spec.Taints = append(b.n.Spec.Taints, corev1.Taint{Key: k, Effect: e})
	return b
}
func (b nodeBuilder) obj() *corev1.Node { return b.n }

type podBuilder struct{ p *corev1.Pod }

func mkPod(name string) podBuilder {
	return podBuilder{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: "default", UID: types.UID("uid-" + name), Labels: map[string]string{},
	}}}
}

func (b podBuilder) ns(ns string) podBuilder { b.p.Namespace = ns; return b }
func (b podBuilder) label(k, v string) podBuilder {
	b.p.Labels[k] = v
	return b
}
func (b podBuilder) on(node string) podBuilder { b.p.Spec.NodeName = node; return b }
func (b podBuilder) terminating() podBuilder {
	b.p.DeletionTimestamp = &metav1.Time{}
	return b
}
func (b podBuilder) nodeSelector(k, v string) podBuilder {
	if b.p.Spec.NodeSelector == nil {
		b.p.Spec.NodeSelector = map[string]string{}
	}
	b.p.Spec.NodeSelector[k] = v
	return b
}
func (b podBuilder) tolerate(k string) podBuilder {
	b.p.Spec.Tolerations = append(b.p.Spec.Tolerations, corev1.Toleration{Key: k, Operator: corev1.TolerationOpExists})
	return b
}
func (b podBuilder) ownedBy(kind, name string) podBuilder {
	apiVersion := "apps/v1"
	if kind == "ReplicationController" {
		apiVersion = "v1"
	}
	b.p.OwnerReferences = append(b.p.OwnerReferences, metav1.OwnerReference{
		APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID("uid-" + name), Controller: ptr.To(true),
	})
	return b
}

// spread adds a constraint; opts tweak it.
func (b podBuilder) spread(key string, maxSkew int32, action corev1.UnsatisfiableConstraintAction, sel *metav1.LabelSelector, opts ...func(*corev1.TopologySpreadConstraint)) podBuilder {
	c := corev1.TopologySpreadConstraint{TopologyKey: key, MaxSkew: maxSkew, WhenUnsatisfiable: action, LabelSelector: sel}
	for _, o := range opts {
		o(&c)
	}
	b.p.Spec.TopologySpreadConstraints = append(b.p.Spec.TopologySpreadConstraints, c)
	return b
}
func (b podBuilder) obj() *corev1.Pod { return b.p }

func minDomains(n int32) func(*corev1.TopologySpreadConstraint) {
	return func(c *corev1.TopologySpreadConstraint) { c.MinDomains = &n }
}
func affinityPolicy(p corev1.NodeInclusionPolicy) func(*corev1.TopologySpreadConstraint) {
	return func(c *corev1.TopologySpreadConstraint) { c.NodeAffinityPolicy = &p }
}
func taintsPolicy(p corev1.NodeInclusionPolicy) func(*corev1.TopologySpreadConstraint) {
	return func(c *corev1.TopologySpreadConstraint) { c.NodeTaintsPolicy = &p }
}
func matchLabelKeys(keys ...string) func(*corev1.TopologySpreadConstraint) {
	return func(c *corev1.TopologySpreadConstraint) { c.MatchLabelKeys = keys }
}

func selector(kv ...string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func service(ns, name string, sel map[string]string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Selector: sel}}
}

func replicaSet(ns, name string, sel *metav1.LabelSelector) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		Spec: appsv1.ReplicaSetSpec{Selector: sel}}
}

// rawArgs encodes args the way the framework hands them to an out-of-tree plugin.
func rawArgs(t testing.TB, args *configv1.PodTopologySpreadArgs) runtime.Object {
	t.Helper()
	if args == nil {
		return nil
	}
	return difftest.Args(t, args)
}

// newEnvAndPlugin builds an environment for nodes/pods/objs and our plugin
// in it with the given args (nil: no args, i.e. System defaulting).
func newEnvAndPlugin(t testing.TB, ctx context.Context, nodes []*corev1.Node, pods []*corev1.Pod, args *configv1.PodTopologySpreadArgs, objs ...runtime.Object) (*difftest.Env, fwk.Plugin) {
	t.Helper()
	env := difftest.NewEnv(t, &difftest.Cluster{Nodes: nodes, Pods: pods}, objs...)
	pl, err := New(ctx, rawArgs(t, args), env.Handle)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	env.Start(ctx)
	return env, pl
}
