package podtopologyspread

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/klog/v2"
	configv1 "k8s.io/kube-scheduler/config/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/features"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	intree "k8s.io/kubernetes/pkg/scheduler/framework/plugins/podtopologyspread"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/difftest"
)

// features136 are the gates the in-tree plugin reads, at their 1.36 defaults.
var features136 = feature.Features{
	EnableNodeInclusionPolicyInPodTopologySpread: true,
	EnableMatchLabelKeysInPodTopologySpread:      true,
	EnableSchedulingQueueHint:                    true,
	EnableTaintTolerationComparisonOperators:     false,
}

// Seeds of the differential test: each runs its own reproducible sequence of
// scenarios (a scenario is a cluster, its objects, plugin args and a few pods).
var diffSeeds = []uint64{1, 2, 3, 4, 5}

const (
	scenariosPerSeed      = 600 // × 2 pods × 5 seeds = 6000 pods
	shortScenariosPerSeed = 60
	podsPerScenario       = 2
)

// Pools the generated constraints draw from; "rack" is a custom key some
// nodes have, "disk" one of difftest's node labels.
var (
	spreadKeys    = []string{corev1.LabelTopologyZone, corev1.LabelHostname, "rack", "disk"}
	racks         = []string{"r1", "r2", "r3"}
	versions      = []string{"v1", "v2"}
	matchLabelSet = []string{"version", "tier", "app", "missing"}
)

func TestDefaultGatesAreThoseCompared(t *testing.T) {
	got := feature.NewSchedulerFeaturesFromGates(utilfeature.DefaultFeatureGate)
	if got.EnableNodeInclusionPolicyInPodTopologySpread != features136.EnableNodeInclusionPolicyInPodTopologySpread ||
		got.EnableMatchLabelKeysInPodTopologySpread != features136.EnableMatchLabelKeysInPodTopologySpread ||
		got.EnableSchedulingQueueHint != features136.EnableSchedulingQueueHint ||
		got.EnableTaintTolerationComparisonOperators != features136.EnableTaintTolerationComparisonOperators {
		t.Fatalf("default gates changed (%s=%v): update features136", features.NodeInclusionPolicyInPodTopologySpread,
			utilfeature.DefaultFeatureGate.Enabled(features.NodeInclusionPolicyInPodTopologySpread))
	}
}

// scenario is one generated cluster with the plugin configuration to compare.
type scenario struct {
	cluster *difftest.Cluster
	objs    []runtime.Object
	list    []corev1.TopologySpreadConstraint // List default constraints; nil: System
	isList  bool
	pods    []*corev1.Pod
}

func genScenario(r *rand.Rand) *scenario {
	opts := difftest.ClusterOptions{MaxNodes: 10, MaxPodsPerNode: 5}
	if r.IntN(10) == 0 {
		opts.MaxNodes = 40 // larger domains, and the parallelizer splits the work
	}
	s := &scenario{cluster: difftest.RandomCluster(r, opts)}
	for _, n := range s.cluster.Nodes {
		if r.IntN(12) == 0 {
			delete(n.Labels, corev1.LabelHostname)
		}
		if r.IntN(3) != 0 {
			n.Labels["rack"] = difftest.Pick(r, racks)
		}
	}
	for _, p := range s.cluster.Pods {
		if r.IntN(3) == 0 {
			p.Labels["version"] = difftest.Pick(r, versions)
		}
		if r.IntN(10) == 0 {
			p.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
		}
	}
	s.objs = genOwners(r)
	if r.IntN(5) == 0 {
		s.isList = true
		s.list = genDefaultConstraints(r)
	}
	for i := range podsPerScenario {
		s.pods = append(s.pods, genIncoming(r, fmt.Sprintf("incoming-%d", i), len(s.cluster.Nodes)))
	}
	return s
}

// genOwners makes Services and controllers in both namespaces, selecting by
// app (mostly) so that they group some of the generated pods.
func genOwners(r *rand.Rand) []runtime.Object {
	var objs []runtime.Object
	for _, ns := range difftest.Namespaces {
		for i := range r.IntN(3) {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("svc-%d", i)}}
			switch r.IntN(5) {
			case 0: // no selector: selects nothing
			case 1:
				svc.Spec.Selector = map[string]string{"tier": difftest.Pick(r, difftest.LabelVals)}
			default:
				svc.Spec.Selector = map[string]string{"app": difftest.Pick(r, difftest.AppLabels)}
			}
			objs = append(objs, svc)
		}
		for _, app := range difftest.AppLabels {
			sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
			if r.IntN(4) == 0 {
				sel = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "version", Operator: metav1.LabelSelectorOpIn, Values: []string{difftest.Pick(r, versions)}},
				}}
			}
			meta := func(kind string) metav1.ObjectMeta {
				return metav1.ObjectMeta{Namespace: ns, Name: kind + "-" + app, UID: types.UID(ns + kind + app)}
			}
			if r.IntN(3) != 0 {
				objs = append(objs, &appsv1.ReplicaSet{ObjectMeta: meta("rs"), Spec: appsv1.ReplicaSetSpec{Selector: sel}})
			}
			if r.IntN(3) == 0 {
				objs = append(objs, &appsv1.StatefulSet{ObjectMeta: meta("ss"), Spec: appsv1.StatefulSetSpec{Selector: sel}})
			}
			if r.IntN(3) == 0 {
				objs = append(objs, &corev1.ReplicationController{ObjectMeta: meta("rc"),
					Spec: corev1.ReplicationControllerSpec{Selector: map[string]string{"app": app}}})
			}
		}
	}
	return objs
}

func genDefaultConstraints(r *rand.Rand) []corev1.TopologySpreadConstraint {
	var out []corev1.TopologySpreadConstraint
	for range r.IntN(3) {
		c := corev1.TopologySpreadConstraint{
			TopologyKey:        difftest.Pick(r, spreadKeys[:3]),
			MaxSkew:            int32(1 + r.IntN(3)),
			WhenUnsatisfiable:  difftest.Pick(r, []corev1.UnsatisfiableConstraintAction{corev1.DoNotSchedule, corev1.ScheduleAnyway}),
			NodeAffinityPolicy: genPolicy(r),
			NodeTaintsPolicy:   genPolicy(r),
		}
		if c.WhenUnsatisfiable == corev1.DoNotSchedule && r.IntN(3) == 0 {
			c.MinDomains = ptr.To(int32(1 + r.IntN(4)))
		}
		if !slices.ContainsFunc(out, func(o corev1.TopologySpreadConstraint) bool {
			return o.TopologyKey == c.TopologyKey && o.WhenUnsatisfiable == c.WhenUnsatisfiable
		}) {
			out = append(out, c)
		}
	}
	return out
}

func genPolicy(r *rand.Rand) *corev1.NodeInclusionPolicy {
	switch r.IntN(3) {
	case 0:
		return ptr.To(corev1.NodeInclusionPolicyHonor)
	case 1:
		return ptr.To(corev1.NodeInclusionPolicyIgnore)
	}
	return nil
}

// genIncoming makes a pod to schedule: mostly with spread constraints of its
// own, otherwise with a controller (existing or not) so defaults may apply.
func genIncoming(r *rand.Rand, name string, nodes int) *corev1.Pod {
	p := difftest.RandomPod(r, name)
	if r.IntN(3) == 0 {
		p.Labels["version"] = difftest.Pick(r, versions)
	}
	difftest.AddTolerations(r, p)
	if r.IntN(2) == 0 {
		difftest.AddNodeAffinity(r, p, nodes)
	}

	if r.IntN(5) == 0 {
		// No constraints: the defaults apply if something groups the pod.
		if r.IntN(4) != 0 {
			kind := difftest.Pick(r, []string{"rs", "rs", "ss", "rc"})
			ref := metav1.OwnerReference{Name: kind + "-" + difftest.Pick(r, difftest.AppLabels), Controller: ptr.To(true)}
			switch kind {
			case "rs":
				ref.APIVersion, ref.Kind = "apps/v1", "ReplicaSet"
			case "ss":
				ref.APIVersion, ref.Kind = "apps/v1", "StatefulSet"
			case "rc":
				ref.APIVersion, ref.Kind = "v1", "ReplicationController"
			}
			if r.IntN(10) == 0 {
				ref.Controller = nil // an owner, but not the controller
			}
			p.OwnerReferences = []metav1.OwnerReference{ref}
		}
		return p
	}

	for range 1 + r.IntN(3) {
		c := corev1.TopologySpreadConstraint{
			TopologyKey:        difftest.Pick(r, spreadKeys),
			MaxSkew:            int32(1 + r.IntN(3)),
			WhenUnsatisfiable:  difftest.Pick(r, []corev1.UnsatisfiableConstraintAction{corev1.DoNotSchedule, corev1.ScheduleAnyway}),
			LabelSelector:      genSelector(r),
			NodeAffinityPolicy: genPolicy(r),
			NodeTaintsPolicy:   genPolicy(r),
		}
		if c.WhenUnsatisfiable == corev1.DoNotSchedule && r.IntN(3) == 0 {
			c.MinDomains = ptr.To(int32(1 + r.IntN(4)))
		}
		if r.IntN(3) == 0 {
			for _, k := range matchLabelSet {
				if r.IntN(2) == 0 {
					c.MatchLabelKeys = append(c.MatchLabelKeys, k)
				}
			}
		}
		if !slices.ContainsFunc(p.Spec.TopologySpreadConstraints, func(o corev1.TopologySpreadConstraint) bool {
			return o.TopologyKey == c.TopologyKey && o.WhenUnsatisfiable == c.WhenUnsatisfiable
		}) {
			p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, c)
		}
	}
	return p
}

func genSelector(r *rand.Rand) *metav1.LabelSelector {
	switch r.IntN(12) {
	case 0:
		return nil // selects nothing
	case 1:
		return &metav1.LabelSelector{} // selects everything, yet counts nothing
	case 2:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}}
	case 3:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{difftest.Pick(r, difftest.AppLabels)}},
			{Key: "tier", Operator: metav1.LabelSelectorOpDoesNotExist},
		}}
	case 4:
		if r.IntN(8) == 0 { // invalid: In without values
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn}}}
		}
		return &metav1.LabelSelector{MatchLabels: map[string]string{"tier": difftest.Pick(r, difftest.LabelVals)}}
	default:
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": difftest.Pick(r, difftest.AppLabels)}}
	}
}

// plugins builds ours and the in-tree plugin on env with the scenario's args.
func (s *scenario) plugins(t testing.TB, ctx context.Context, env *difftest.Env) (ours, theirs fwk.Plugin) {
	t.Helper()
	upArgs := &config.PodTopologySpreadArgs{DefaultingType: config.SystemDefaulting}
	var ourArgs runtime.Object // nil: no args at all, which means System
	if s.isList {
		upArgs = &config.PodTopologySpreadArgs{DefaultingType: config.ListDefaulting, DefaultConstraints: s.list}
		ourArgs = rawArgs(t, &configv1.PodTopologySpreadArgs{DefaultingType: configv1.ListDefaulting, DefaultConstraints: s.list})
	}
	var err error
	if ours, err = New(ctx, ourArgs, env.Handle); err != nil {
		t.Fatalf("our New: %v", err)
	}
	if theirs, err = intree.New(ctx, upArgs, env.Handle, features136); err != nil {
		t.Fatalf("in-tree New: %v", err)
	}
	return ours, theirs
}

// sameOutcome compares statuses; for internal errors only the code, since the
// wording of error messages is ours.
func sameOutcome(a, b *fwk.Status) bool {
	if a.Code() == fwk.Error || b.Code() == fwk.Error {
		return a.Code() == b.Code()
	}
	return difftest.SameStatus(a, b)
}

// diffCase runs one pod of a scenario through both plugins and returns the
// differences found.
type diffCase struct {
	ctx          context.Context
	r            *rand.Rand
	env          *difftest.Env
	ours, theirs fwk.Plugin
	pod          *corev1.Pod
	problems     []string
	stats        diffStats
}

// diffStats tell how much of the behaviour the generated cases exercised.
type diffStats struct {
	pods       int
	filtered   int // pods with hard constraints (PreFilter not skipped)
	rejected   int // nodes the in-tree Filter rejected
	errors     int // pods the in-tree plugin failed on (invalid selectors)
	scored     int // pods whose in-tree scores differ between nodes
	addRemove  int // AddPod/RemovePod sequences compared
	hintQueues int // hint comparisons where the in-tree plugin said Queue
	hints      int
}

func (a *diffStats) add(b diffStats) {
	a.pods += b.pods
	a.filtered += b.filtered
	a.rejected += b.rejected
	a.errors += b.errors
	a.scored += b.scored
	a.addRemove += b.addRemove
	a.hintQueues += b.hintQueues
	a.hints += b.hints
}

func (d *diffCase) errorf(format string, a ...any) {
	d.problems = append(d.problems, fmt.Sprintf(format, a...))
}

func (d *diffCase) run() {
	d.compareFilter()
	d.compareScore()
	d.compareSign()
	for range 2 {
		d.compareAddRemove()
	}
	d.compareHints()
}

func (d *diffCase) compareFilter() {
	got := d.env.Filter(d.ctx, d.ours, d.pod)
	want := d.env.Filter(d.ctx, d.theirs, d.pod)
	d.stats.pods++
	for i, ni := range d.env.NodeInfos {
		if !want[i].IsSuccess() {
			d.stats.rejected++
		}
		if !sameOutcome(got[i], want[i]) {
			d.errorf("Filter on %s: ours %s, in-tree %s", ni.Node().Name, difftest.Describe(got[i]), difftest.Describe(want[i]))
		}
	}
	if len(want) > 0 && want[0].Code() == fwk.Error {
		d.stats.errors++
	}
	state := difftest.NewCycleState()
	if _, st := d.theirs.(fwk.PreFilterPlugin).PreFilter(d.ctx, state, d.pod, d.env.NodeInfos); st.IsSuccess() {
		d.stats.filtered++
	}
}

func (d *diffCase) compareScore() {
	// Feasible nodes are what other plugins leave: take a random subset, or
	// the nodes this plugin accepts.
	var nodes []fwk.NodeInfo
	if d.r.IntN(2) == 0 {
		nodes = d.env.Feasible(d.env.Filter(d.ctx, d.theirs, d.pod))
	} else {
		for _, ni := range d.env.NodeInfos {
			if d.r.IntN(4) != 0 {
				nodes = append(nodes, ni)
			}
		}
	}
	got, gotSt := d.env.Score(d.ctx, d.ours, d.pod, nodes)
	want, wantSt := d.env.Score(d.ctx, d.theirs, d.pod, nodes)
	if !sameOutcome(gotSt, wantSt) {
		d.errorf("Score status: ours %s, in-tree %s", difftest.Describe(gotSt), difftest.Describe(wantSt))
		return
	}
	if len(want) > 1 && slices.ContainsFunc(want, func(v int64) bool { return v != want[0] }) {
		d.stats.scored++
	}
	if !slices.Equal(got, want) {
		names := make([]string, len(nodes))
		for i, ni := range nodes {
			names[i] = ni.Node().Name
		}
		d.errorf("scores on %v: ours %v, in-tree %v", names, got, want)
	}
}

func (d *diffCase) compareSign() {
	_, got := d.ours.(fwk.SignPlugin).SignPod(d.ctx, d.pod)
	_, want := d.theirs.(fwk.SignPlugin).SignPod(d.ctx, d.pod)
	if !difftest.SameStatus(got, want) {
		d.errorf("SignPod: ours %s, in-tree %s", difftest.Describe(got), difftest.Describe(want))
	}
}

// compareAddRemove mimics preemption and nominated pods: on a clone of the
// PreFilter state, remove some pods of one node and add others to it, then
// filter every node with the modified state.
func (d *diffCase) compareAddRemove() {
	if len(d.env.NodeInfos) == 0 {
		return
	}
	target := difftest.Pick(d.r, d.env.NodeInfos)
	var remove, add []fwk.PodInfo
	for _, pi := range target.GetPods() {
		if d.r.IntN(2) == 0 {
			remove = append(remove, pi)
		}
	}
	for i := range d.r.IntN(3) {
		p := difftest.RandomPod(d.r, fmt.Sprintf("nominated-%d", i))
		if d.r.IntN(2) == 0 {
			p.Namespace = d.pod.Namespace
		}
		if d.r.IntN(3) == 0 {
			p.Labels["version"] = difftest.Pick(d.r, versions)
		}
		p.Spec.NodeName = target.Node().Name
		pi, err := framework.NewPodInfo(p)
		if err != nil {
			panic(err)
		}
		add = append(add, pi)
	}
	// Put some victims back, as preemption does for reprieved pods.
	for _, pi := range remove {
		if d.r.IntN(3) == 0 {
			add = append(add, pi)
		}
	}

	results := make([][]*fwk.Status, 2)
	for k, pl := range []fwk.Plugin{d.ours, d.theirs} {
		state := difftest.NewCycleState()
		_, st := pl.(fwk.PreFilterPlugin).PreFilter(d.ctx, state, d.pod, d.env.NodeInfos)
		if !st.IsSuccess() {
			return // skipped or failed: the framework never calls the extensions
		}
		state = state.Clone()
		ext := pl.(fwk.PreFilterPlugin).PreFilterExtensions()
		for _, pi := range remove {
			if st := ext.RemovePod(d.ctx, state, d.pod, pi, target); !st.IsSuccess() {
				d.errorf("RemovePod (plugin %d): %v", k, st)
			}
		}
		for _, pi := range add {
			if st := ext.AddPod(d.ctx, state, d.pod, pi, target); !st.IsSuccess() {
				d.errorf("AddPod (plugin %d): %v", k, st)
			}
		}
		for _, ni := range d.env.NodeInfos {
			st := pl.(fwk.FilterPlugin).Filter(d.ctx, state, d.pod, ni)
			results[k] = append(results[k], st)
		}
	}
	d.stats.addRemove++
	for i, ni := range d.env.NodeInfos {
		if !sameOutcome(results[0][i], results[1][i]) {
			d.errorf("Filter on %s after removing %d and adding %d pods on %s: ours %s, in-tree %s",
				ni.Node().Name, len(remove), len(add), target.Node().Name,
				difftest.Describe(results[0][i]), difftest.Describe(results[1][i]))
		}
	}
}

// compareHints feeds both plugins' queueing hints the same random events.
func (d *diffCase) compareHints() {
	hints := func(pl fwk.Plugin) []fwk.ClusterEventWithHint {
		evs, err := pl.(fwk.EnqueueExtensions).EventsToRegister(d.ctx)
		if err != nil {
			panic(err)
		}
		return evs
	}
	ours, theirs := hints(d.ours), hints(d.theirs)
	if len(ours) != len(theirs) {
		d.errorf("EventsToRegister: ours %d events, in-tree %d", len(ours), len(theirs))
		return
	}
	logger := klog.Background()
	for i := range ours {
		if ours[i].Event != theirs[i].Event {
			d.errorf("event %d: ours %v, in-tree %v", i, ours[i].Event, theirs[i].Event)
			continue
		}
		for range 4 {
			oldObj, newObj := d.randomEvent(ours[i].Event.Resource)
			gotH, gotErr := ours[i].QueueingHintFn(logger, d.pod, oldObj, newObj)
			wantH, wantErr := theirs[i].QueueingHintFn(logger, d.pod, oldObj, newObj)
			d.stats.hints++
			if wantH == fwk.Queue {
				d.stats.hintQueues++
			}
			if gotH != wantH || (gotErr == nil) != (wantErr == nil) {
				d.errorf("%s hint for %s → %s: ours %v (%v), in-tree %v (%v)", ours[i].Event.Resource,
					objName(oldObj), objName(newObj), gotH, gotErr, wantH, wantErr)
			}
		}
	}
}

func objName(o any) string {
	if m, ok := o.(metav1.Object); ok {
		return m.GetName()
	}
	return "<none>"
}

// randomEvent returns an (old, new) pair for an add, update or delete.
func (d *diffCase) randomEvent(res fwk.EventResource) (oldObj, newObj any) {
	kind := d.r.IntN(3) // 0 add, 1 delete, 2 update
	if res == fwk.Node {
		base := difftest.Pick(d.r, d.env.NodeInfos).Node()
		changed := base.DeepCopy()
		switch d.r.IntN(4) {
		case 0:
			changed.Labels[corev1.LabelTopologyZone] = difftest.Pick(d.r, difftest.Zones)
		case 1:
			delete(changed.Labels, difftest.Pick(d.r, spreadKeys))
		case 2:
			changed.Spec.Taints = append(changed.Spec.Taints, corev1.Taint{Key: "new", Effect: corev1.TaintEffectNoSchedule})
		case 3:
			changed.Labels["rack"] = difftest.Pick(d.r, racks)
		}
		switch kind {
		case 0:
			return nil, changed
		case 1:
			return base, nil
		}
		return base, changed
	}

	var base *corev1.Pod
	switch {
	case d.r.IntN(4) == 0:
		base = d.pod // the pending pod itself (e.g. it gets a toleration)
	case len(d.env.NodeInfos) > 0 && d.r.IntN(4) != 0:
		pods := difftest.Pick(d.r, d.env.NodeInfos).GetPods()
		if len(pods) > 0 {
			base = difftest.Pick(d.r, pods).GetPod()
		}
	}
	if base == nil {
		base = difftest.RandomPod(d.r, "event")
		if d.r.IntN(2) == 0 {
			base.Spec.NodeName = "node-0"
		}
	}
	changed := base.DeepCopy()
	switch d.r.IntN(4) {
	case 0:
		changed.Labels = map[string]string{"app": difftest.Pick(d.r, difftest.AppLabels)}
	case 1:
		changed.Labels["version"] = difftest.Pick(d.r, versions)
	case 2:
		changed.Spec.Tolerations = append(changed.Spec.Tolerations, corev1.Toleration{Key: difftest.Pick(d.r, difftest.TaintKeys), Operator: corev1.TolerationOpExists})
	case 3:
		changed.Status.NominatedNodeName = "node-0"
	}
	switch kind {
	case 0:
		return nil, changed
	case 1:
		return base, nil
	}
	return base, changed
}

// describeScenario renders what is needed to understand a failing case.
func describeScenario(s *scenario, pod *corev1.Pod) string {
	var b strings.Builder
	for _, n := range s.cluster.Nodes {
		var taints []string
		for _, t := range n.Spec.Taints {
			taints = append(taints, t.ToString())
		}
		fmt.Fprintf(&b, "  node %s labels=%v taints=%v\n", n.Name, n.Labels, taints)
	}
	for _, p := range s.cluster.Pods {
		fmt.Fprintf(&b, "  pod %s/%s on %s labels=%v terminating=%v\n", p.Namespace, p.Name, p.Spec.NodeName, p.Labels, p.DeletionTimestamp != nil)
	}
	for _, o := range s.objs {
		j, _ := json.Marshal(o)
		fmt.Fprintf(&b, "  object %s\n", j)
	}
	if s.isList {
		j, _ := json.Marshal(s.list)
		fmt.Fprintf(&b, "  List defaulting: %s\n", j)
	} else {
		b.WriteString("  System defaulting\n")
	}
	j, _ := json.Marshal(struct {
		Labels map[string]string
		Spec   corev1.PodSpec
		Owners []metav1.OwnerReference
		NS     string
	}{pod.Labels, corev1.PodSpec{
		TopologySpreadConstraints: pod.Spec.TopologySpreadConstraints,
		NodeSelector:              pod.Spec.NodeSelector,
		Affinity:                  pod.Spec.Affinity,
		Tolerations:               pod.Spec.Tolerations,
	}, pod.OwnerReferences, pod.Namespace})
	fmt.Fprintf(&b, "  incoming %s\n", j)
	return b.String()
}

// TestDifferentialAgainstInTree compares Filter verdicts, normalized scores,
// AddPod/RemovePod, SignPod and queueing hints with the in-tree plugin on
// generated scenarios. A failure names its seed and scenario; rerun one with
// -run 'TestDifferentialAgainstInTree/seed=N' to reproduce it.
func TestDifferentialAgainstInTree(t *testing.T) {
	perSeed := scenariosPerSeed
	if testing.Short() {
		perSeed = shortScenariosPerSeed
	}
	for _, seed := range diffSeeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			var stats diffStats
			failures := 0
			start := time.Now()
			for sc := range perSeed {
				// One generator per scenario: a scenario reproduces on its own
				// whatever the others draw.
				r := rand.New(rand.NewPCG(seed, uint64(sc)))
				s := genScenario(r)
				// A plain context: per-node V(5) logs of both plugins would
				// dominate the run time.
				ctx, cancel := context.WithCancel(context.Background())
				env := difftest.NewEnv(t, s.cluster, s.objs...)
				ours, theirs := s.plugins(t, ctx, env)
				env.Start(ctx)
				for i, pod := range s.pods {
					d := &diffCase{ctx: ctx, r: r, env: env, ours: ours, theirs: theirs, pod: pod}
					d.run()
					stats.add(d.stats)
					if len(d.problems) > 0 {
						failures++
						t.Errorf("seed %d scenario %d pod %d:\n    %s\nscenario:\n%s",
							seed, sc, i, strings.Join(d.problems, "\n    "), describeScenario(s, pod))
					}
				}
				cancel()
				if failures >= 5 {
					t.Fatalf("stopping after %d failing cases", failures)
				}
			}
			t.Logf("seed %d: %d scenarios, %d pods: %d with hard constraints (%d node rejections, %d plugin errors), "+
				"%d with differing scores, %d AddPod/RemovePod runs, %d hints (%d Queue); %v",
				seed, perSeed, stats.pods, stats.filtered, stats.rejected, stats.errors, stats.scored,
				stats.addRemove, stats.hints, stats.hintQueues, time.Since(start).Round(time.Millisecond))
		})
	}
}
