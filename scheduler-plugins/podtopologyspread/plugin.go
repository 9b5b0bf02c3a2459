package podtopologyspread

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	configv1 "k8s.io/kube-scheduler/config/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/features"
)

// Name is the plugin's name in the registry and in scheduler profiles.
const Name = "KubepartsPodTopologySpread"

// Failure reasons, worded as the stock plugin's so that events and pod
// conditions read the same.
const (
	reasonSkew         = "node(s) didn't match pod topology spread constraints"
	reasonMissingLabel = reasonSkew + " (missing required label)"
)

// TopologySpread spreads pods over topology domains.
type TopologySpread struct {
	snapshot fwk.SharedLister
	parallel fwk.Parallelizer
	// defaultConstraints apply to pods without constraints of their own;
	// systemDefaulted tells they are the built-in ones, which are lenient
	// about nodes without a zone label when scoring.
	defaultConstraints []corev1.TopologySpreadConstraint
	systemDefaulted    bool
	// owners is set only when there are default constraints to resolve.
	owners *owners
	// comparisonOperators lets tolerations use Gt/Lt when deciding whether a
	// tainted node is excluded (the TaintTolerationComparisonOperators gate).
	comparisonOperators bool
}

var (
	_ fwk.PreFilterPlugin     = &TopologySpread{}
	_ fwk.PreFilterExtensions = &TopologySpread{}
	_ fwk.FilterPlugin        = &TopologySpread{}
	_ fwk.PreScorePlugin      = &TopologySpread{}
	_ fwk.ScorePlugin         = &TopologySpread{}
	_ fwk.ScoreExtensions     = &TopologySpread{}
	_ fwk.EnqueueExtensions   = &TopologySpread{}
	_ fwk.SignPlugin          = &TopologySpread{}
)

// New builds the plugin from its (possibly absent) PodTopologySpreadArgs.
func New(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := decodeArgs(obj)
	if err != nil {
		return nil, err
	}
	if err := validateArgs(&args); err != nil {
		return nil, err
	}
	if h.SnapshotSharedLister() == nil {
		return nil, errors.New("plugin " + Name + ": the framework handle has no snapshot lister")
	}
	pl := &TopologySpread{
		snapshot:            h.SnapshotSharedLister(),
		parallel:            h.Parallelizer(),
		defaultConstraints:  args.DefaultConstraints,
		comparisonOperators: features.Enabled(features.TaintTolerationComparisonOperators),
	}
	if args.DefaultingType == configv1.SystemDefaulting {
		pl.defaultConstraints = systemConstraints()
		pl.systemDefaulted = true
	}
	if len(pl.defaultConstraints) > 0 {
		f := h.SharedInformerFactory()
		if f == nil {
			return nil, errors.New("plugin " + Name + ": default constraints need an informer factory, the framework handle has none")
		}
		pl.owners = newOwners(f)
	}
	return pl, nil
}

// Name returns the plugin's name.
func (pl *TopologySpread) Name() string { return Name }

// SignPod refuses to sign pods the plugin has an opinion on: where such a pod
// may go depends on where its siblings are, so a placement computed for one
// pod cannot be reused for another with an equal spec. With default
// constraints configured, every pod may get some.
func (pl *TopologySpread) SignPod(_ context.Context, pod *corev1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	if len(pod.Spec.TopologySpreadConstraints) > 0 {
		return nil, fwk.NewStatus(fwk.Unschedulable, "pods with topology constraints are not signable")
	}
	if len(pl.defaultConstraints) > 0 {
		return nil, fwk.NewStatus(fwk.Unschedulable, "pods with default topology constraints are not signable")
	}
	return nil, nil
}
