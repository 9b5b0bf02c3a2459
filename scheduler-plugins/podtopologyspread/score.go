package podtopologyspread

import (
	"context"
	"fmt"
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

const preScoreStateKey fwk.StateKey = "PreScore" + Name

// unscored marks, inside NormalizeScore, nodes that get 0 whatever the others
// score. A raw score can equal it only for a pod with maxSkew 0, which the API
// forbids; the stock plugin treats such a score the same way.
const unscored = -1

// scoreState is what PreScore computes for Score and NormalizeScore.
type scoreState struct {
	ns          string
	constraints []constraint
	// skipped are feasible nodes lacking a topology key: they score 0.
	skipped sets.Set[string]
	// perDomain[i] counts matching pods per domain of constraint i, for the
	// domains some feasible node is in. Hostname constraints have no entry:
	// a node is its own domain, counted in Score.
	perDomain []map[string]int64
	// weight[i] grows with the number of domains of constraint i, so that a
	// pod more in a topology with many small domains weighs more than in one
	// with few large ones.
	weight []float64
}

// Clone shares the state: nothing modifies it after PreScore.
func (s *scoreState) Clone() fwk.StateData { return s }

// PreScore counts, per soft constraint, the matching pods in each domain that
// holds a feasible node, over all nodes of the cluster.
func (pl *TopologySpread) PreScore(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, feasible []fwk.NodeInfo) *fwk.Status {
	all, err := pl.snapshot.NodeInfos().List()
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("listing nodes: %w", err))
	}
	if len(all) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	constraints, err := pl.constraintsFor(pod, corev1.ScheduleAnyway)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if len(constraints) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}

	// The system defaults tolerate nodes without a zone label (they still
	// spread by hostname there); explicit constraints need every key.
	strict := len(pod.Spec.TopologySpreadConstraints) > 0 || !pl.systemDefaulted

	s := &scoreState{
		ns:          pod.Namespace,
		constraints: constraints,
		skipped:     sets.New[string](),
		perDomain:   make([]map[string]int64, len(constraints)),
		weight:      make([]float64, len(constraints)),
	}
	for i := range constraints {
		s.perDomain[i] = make(map[string]int64)
	}
	for _, ni := range feasible {
		node := ni.Node()
		if strict && !hasAllKeys(node.Labels, constraints) {
			s.skipped.Insert(node.Name)
			continue
		}
		for i := range constraints {
			if constraints[i].key != corev1.LabelHostname {
				// A missing label (lenient mode) makes the node part of the
				// "" domain, which then counts in the weight.
				s.perDomain[i][node.Labels[constraints[i].key]] = 0
			}
		}
	}
	for i := range constraints {
		n := len(s.perDomain[i])
		if constraints[i].key == corev1.LabelHostname {
			n = len(feasible) - s.skipped.Len()
		}
		s.weight[i] = math.Log(float64(n + 2))
	}

	in := pl.newIncoming(pod)
	logger := klog.FromContext(ctx)
	k := len(constraints)
	perNode := make([]int, len(all)*k) // -1: node not counted for that constraint
	pl.parallel.Until(ctx, len(all), func(n int) {
		row := perNode[n*k : (n+1)*k]
		for i := range row {
			row[i] = -1
		}
		node := all[n].Node()
		if strict && !hasAllKeys(node.Labels, constraints) {
			return
		}
		for i := range constraints {
			c := &constraints[i]
			if c.key == corev1.LabelHostname {
				continue
			}
			if _, wanted := s.perDomain[i][node.Labels[c.key]]; !wanted || !in.includes(logger, c, node) {
				continue
			}
			row[i] = c.countOn(all[n].GetPods(), pod.Namespace)
		}
	}, Name)
	for n := range all {
		for i := range constraints {
			if v := perNode[n*k+i]; v >= 0 {
				s.perDomain[i][all[n].Node().Labels[constraints[i].key]] += int64(v)
			}
		}
	}

	cs.Write(preScoreStateKey, s)
	return nil
}

// Score returns a raw score growing with the number of matching pods in the
// node's domains; NormalizeScore turns it around so that emptier is better.
func (pl *TopologySpread) Score(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	s, err := readScoreState(cs)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	node := nodeInfo.Node()
	if s.skipped.Has(node.Name) {
		return 0, nil
	}
	var total float64
	for i := range s.constraints {
		c := &s.constraints[i]
		value, ok := node.Labels[c.key]
		if !ok {
			continue
		}
		var matching int64
		if c.key == corev1.LabelHostname {
			// Inclusion policies do not apply here: the node is feasible.
			matching = int64(c.countOn(nodeInfo.GetPods(), s.ns))
		} else {
			matching = s.perDomain[i][value]
		}
		// maxSkew-1 is a constant offset per constraint: the larger the
		// tolerated skew, the smaller the relative differences between nodes.
		total += float64(matching)*s.weight[i] + float64(c.maxSkew-1)
	}
	return int64(math.Round(total)), nil
}

// NormalizeScore maps raw scores onto [0, MaxNodeScore], the node with the
// fewest matching pods around getting the most. Nodes skipped in PreScore get 0.
func (pl *TopologySpread) NormalizeScore(ctx context.Context, cs fwk.CycleState, pod *corev1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	s, err := readScoreState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	lowest, highest := int64(math.MaxInt64), int64(0)
	for i := range scores {
		if s.skipped.Has(scores[i].Name) {
			scores[i].Score = unscored
			continue
		}
		lowest = min(lowest, scores[i].Score)
		highest = max(highest, scores[i].Score)
	}
	for i := range scores {
		switch {
		case scores[i].Score == unscored:
			scores[i].Score = 0
		case highest == 0:
			scores[i].Score = fwk.MaxScore
		default:
			// Reflect the score within [lowest, highest], then scale.
			scores[i].Score = fwk.MaxScore * (highest + lowest - scores[i].Score) / highest
		}
	}
	return nil
}

// ScoreExtensions returns the plugin itself, which normalizes its scores.
func (pl *TopologySpread) ScoreExtensions() fwk.ScoreExtensions { return pl }

func readScoreState(cs fwk.CycleState) (*scoreState, error) {
	v, err := cs.Read(preScoreStateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycle state (did PreScore run?): %w", preScoreStateKey, err)
	}
	s, ok := v.(*scoreState)
	if !ok {
		return nil, fmt.Errorf("cycle state %q holds %T, not the PreScore state", preScoreStateKey, v)
	}
	return s, nil
}
