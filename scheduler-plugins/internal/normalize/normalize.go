// Package normalize scales raw plugin scores to the framework's node-score range.
package normalize

import fwk "k8s.io/kube-scheduler/framework"

// ToMax scales scores so the highest becomes fwk.MaxScore and the others
// keep their proportion to it (integer division, as stock). With reverse the
// order flips, so the lowest raw score wins. All-zero scores stay zero unless
// reversed, in which case every node gets the maximum.
func ToMax(scores fwk.NodeScoreList, reverse bool) {
	var highest int64
	for _, s := range scores {
		highest = max(highest, s.Score)
	}
	for i := range scores {
		s := scores[i].Score
		if highest > 0 {
			s = s * fwk.MaxScore / highest
		}
		if reverse {
			s = fwk.MaxScore - s
		}
		scores[i].Score = s
	}
}
