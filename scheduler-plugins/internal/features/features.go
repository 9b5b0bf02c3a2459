// Package features reads the scheduler's feature gates from our plugins
// without importing the kubernetes feature registry into them.
package features

import (
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/featuregate"
)

// TaintTolerationComparisonOperators lets tolerations use Gt and Lt (alpha in 1.36).
const TaintTolerationComparisonOperators featuregate.Feature = "TaintTolerationComparisonOperators"

// Enabled reports whether the gate is on in the process's --feature-gates.
// A gate the binary does not know (as in plugin unit tests, which do not link
// the kubernetes registry) counts as off, instead of panicking.
func Enabled(f featuregate.Feature) bool {
	if _, known := utilfeature.DefaultMutableFeatureGate.GetAll()[f]; !known {
		return false
	}
	return utilfeature.DefaultFeatureGate.Enabled(f)
}
