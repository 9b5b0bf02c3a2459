package podtopologyspread

import (
	"context"
	"fmt"
	"maps"
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

const preFilterStateKey fwk.StateKey = "PreFilter" + Name

// noDomains is the minimum reported while a constraint has no domain at all:
// large enough that no node can exceed the skew against it.
const noDomains = math.MaxInt32

// domains counts the pods a hard constraint selects per topology value and
// keeps the smallest count at hand, so Filter is O(1) per node.
type domains struct {
	count map[string]int
	// howMany[n] is the number of domains currently holding n pods. Counts
	// only ever move by one (AddPod/RemovePod), which lets min follow exactly:
	// when the last domain at min moves up, the new min is min+1.
	howMany map[int]int
	min     int
}

func newDomains(count map[string]int) *domains {
	d := &domains{count: count, howMany: make(map[int]int), min: noDomains}
	for _, n := range count {
		d.howMany[n]++
		d.min = min(d.min, n)
	}
	return d
}

// add moves value's count by delta (±1), creating the domain if needed.
func (d *domains) add(value string, delta int) {
	old, known := d.count[value]
	n := old + delta
	d.count[value] = n
	d.howMany[n]++
	if known {
		d.howMany[old]--
		if d.howMany[old] == 0 {
			delete(d.howMany, old)
			if old == d.min && n > old {
				d.min = n
			}
		}
	}
	d.min = min(d.min, n)
}

// globalMin is the baseline skew is measured against: the least loaded
// domain, or 0 while there are fewer domains than the constraint asks for
// (the missing ones count as empty).
func (d *domains) globalMin(minDomains int32) int {
	if len(d.count) < int(minDomains) {
		return 0
	}
	return d.min
}

func (d *domains) clone() *domains {
	return &domains{count: maps.Clone(d.count), howMany: maps.Clone(d.howMany), min: d.min}
}

// filterState is what PreFilter computes for Filter: one domains per hard
// constraint, in the order of constraints.
type filterState struct {
	in          incoming // shared between clones, never modified
	constraints []constraint
	domains     []*domains
}

// Clone copies the counts, which AddPod/RemovePod modify on the copy the
// framework hands them (preemption, nominated pods).
func (s *filterState) Clone() fwk.StateData {
	c := &filterState{in: s.in, constraints: s.constraints, domains: make([]*domains, len(s.domains))}
	for i, d := range s.domains {
		c.domains[i] = d.clone()
	}
	return c
}

// PreFilter counts, per hard constraint and domain, the pods the constraint
// selects. Pods without hard constraints skip the Filter phase.
func (pl *TopologySpread) PreFilter(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	constraints, err := pl.constraintsFor(pod, corev1.DoNotSchedule)
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	if len(constraints) == 0 {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	s := &filterState{in: pl.newIncoming(pod), constraints: constraints}
	logger := klog.FromContext(ctx)

	// perNode[n*k+i] is node n's count for constraint i, or -1 when the node
	// is no domain of that constraint.
	k := len(constraints)
	perNode := make([]int, len(nodes)*k)
	pl.parallel.Until(ctx, len(nodes), func(n int) {
		row := perNode[n*k : (n+1)*k]
		node := nodes[n].Node()
		if !hasAllKeys(node.Labels, constraints) {
			for i := range row {
				row[i] = -1
			}
			return
		}
		for i := range constraints {
			c := &constraints[i]
			if !s.in.includes(logger, c, node) {
				row[i] = -1
				continue
			}
			row[i] = c.countOn(nodes[n].GetPods(), pod.Namespace)
		}
	}, Name)

	s.domains = make([]*domains, k)
	for i := range constraints {
		count := make(map[string]int)
		for n := range nodes {
			if v := perNode[n*k+i]; v >= 0 {
				count[nodes[n].Node().Labels[constraints[i].key]] += v
			}
		}
		s.domains[i] = newDomains(count)
	}
	cs.Write(preFilterStateKey, s)
	return nil, nil
}

// PreFilterExtensions lets the framework add or remove pods on the state.
func (pl *TopologySpread) PreFilterExtensions() fwk.PreFilterExtensions { return pl }

// AddPod accounts for a pod placed on node in this cycle's view (a nominated
// pod, or a victim put back during preemption).
func (pl *TopologySpread) AddPod(ctx context.Context, cs fwk.CycleState, podToSchedule *corev1.Pod, added fwk.PodInfo, node fwk.NodeInfo) *fwk.Status {
	return pl.shift(ctx, cs, added.GetPod(), node.Node(), 1)
}

// RemovePod forgets a pod, e.g. a preemption victim.
func (pl *TopologySpread) RemovePod(ctx context.Context, cs fwk.CycleState, podToSchedule *corev1.Pod, removed fwk.PodInfo, node fwk.NodeInfo) *fwk.Status {
	return pl.shift(ctx, cs, removed.GetPod(), node.Node(), -1)
}

// shift moves the counts of the domains of node that select p by delta.
// Unlike PreFilter it does not look at p's deletion timestamp: the framework
// asks about pods it has decided to add or remove.
func (pl *TopologySpread) shift(ctx context.Context, cs fwk.CycleState, p *corev1.Pod, node *corev1.Node, delta int) *fwk.Status {
	s, err := readFilterState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if node == nil || p.Namespace != s.in.pod.Namespace || !hasAllKeys(node.Labels, s.constraints) {
		return nil
	}
	logger := klog.FromContext(ctx)
	podLabels := labels.Set(p.Labels)
	for i := range s.constraints {
		c := &s.constraints[i]
		if !c.selector.Matches(podLabels) || !s.in.includes(logger, c, node) {
			continue
		}
		s.domains[i].add(node.Labels[c.key], delta)
	}
	return nil
}

func readFilterState(cs fwk.CycleState) (*filterState, error) {
	v, err := cs.Read(preFilterStateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycle state (did PreFilter run?): %w", preFilterStateKey, err)
	}
	s, ok := v.(*filterState)
	if !ok {
		return nil, fmt.Errorf("cycle state %q holds %T, not the PreFilter state", preFilterStateKey, v)
	}
	return s, nil
}

// Filter rejects a node whose domain would become too crowded with the pod
// there: count in the node's domain, plus one if the pod selects itself,
// minus the global minimum must not exceed maxSkew.
func (pl *TopologySpread) Filter(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := readFilterState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	node := nodeInfo.Node()
	if node == nil {
		return fwk.AsStatus(fmt.Errorf("node not found"))
	}
	podLabels := labels.Set(pod.Labels)
	for i := range s.constraints {
		c := &s.constraints[i]
		value, ok := node.Labels[c.key]
		if !ok {
			// Adding the pod cannot fix this; only relabeling the node can.
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reasonMissingLabel)
		}
		self := 0
		if c.selector.Matches(podLabels) {
			self = 1
		}
		d := s.domains[i]
		floor := d.globalMin(c.minDomains)
		if skew := d.count[value] + self - floor; skew > int(c.maxSkew) {
			klog.FromContext(ctx).V(5).Info("Node would exceed the maximum skew of a topology spread constraint",
				"pod", klog.KObj(pod), "node", klog.KObj(node), "topologyKey", c.key, "skew", skew, "maxSkew", c.maxSkew)
			return fwk.NewStatus(fwk.Unschedulable, reasonSkew)
		}
	}
	return nil
}
