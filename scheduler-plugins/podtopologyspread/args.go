package podtopologyspread

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	configv1 "k8s.io/kube-scheduler/config/v1"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/pluginargs"
)

// systemConstraints are what "System" defaulting applies to pods without
// constraints of their own: a gentle spread over nodes and zones that only
// influences scoring. The selector is filled in per pod. Their order matters:
// Score sums floating-point terms in constraint order.
func systemConstraints() []corev1.TopologySpreadConstraint {
	return []corev1.TopologySpreadConstraint{
		{TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.ScheduleAnyway, MaxSkew: 3},
		{TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.ScheduleAnyway, MaxSkew: 5},
	}
}

// decodeArgs turns what the framework hands to New (PodTopologySpreadArgs
// fields, undecoded, or nothing) into typed, defaulted arguments.
func decodeArgs(obj runtime.Object) (configv1.PodTopologySpreadArgs, error) {
	var args configv1.PodTopologySpreadArgs
	if err := pluginargs.Decode(Name, obj, &args); err != nil {
		return args, err
	}
	// Same defaulting as the v1 config API: no type means "System".
	if args.DefaultingType == "" {
		args.DefaultingType = configv1.SystemDefaulting
	}
	return args, nil
}

// validateArgs rejects the argument sets the stock scheduler refuses to start
// with, so a configuration behaves the same whichever plugin it is given to.
func validateArgs(args *configv1.PodTopologySpreadArgs) error {
	var problems []string
	add := func(path, format string, a ...any) {
		problems = append(problems, path+": "+fmt.Sprintf(format, a...))
	}

	switch args.DefaultingType {
	case configv1.ListDefaulting:
	case configv1.SystemDefaulting:
		if len(args.DefaultConstraints) > 0 {
			add("defaultingType", "%q cannot be combined with defaultConstraints, use %q to apply them",
				configv1.SystemDefaulting, configv1.ListDefaulting)
		}
	default:
		add("defaultingType", "unsupported value %q, must be %q or %q",
			args.DefaultingType, configv1.SystemDefaulting, configv1.ListDefaulting)
	}

	for i, c := range args.DefaultConstraints {
		path := fmt.Sprintf("defaultConstraints[%d]", i)
		if c.MaxSkew <= 0 {
			add(path+".maxSkew", "must be greater than zero, got %d", c.MaxSkew)
		}
		if c.TopologyKey == "" {
			add(path+".topologyKey", "must not be empty")
		} else if msgs := validation.IsQualifiedName(c.TopologyKey); len(msgs) > 0 {
			add(path+".topologyKey", "%q is not a valid label key: %s", c.TopologyKey, strings.Join(msgs, "; "))
		}
		switch c.WhenUnsatisfiable {
		case corev1.DoNotSchedule, corev1.ScheduleAnyway:
		case "":
			add(path+".whenUnsatisfiable", "must not be empty")
		default:
			add(path+".whenUnsatisfiable", "unsupported value %q, must be %q or %q",
				c.WhenUnsatisfiable, corev1.DoNotSchedule, corev1.ScheduleAnyway)
		}
		if c.LabelSelector != nil {
			add(path+".labelSelector", "must not be set: a default constraint's selector is derived from the Services and controllers selecting each pod")
		}
		for j := range i {
			prev := args.DefaultConstraints[j]
			if prev.TopologyKey == c.TopologyKey && prev.WhenUnsatisfiable == c.WhenUnsatisfiable {
				add(path, "duplicates defaultConstraints[%d] (topologyKey %q, whenUnsatisfiable %q)",
					j, c.TopologyKey, c.WhenUnsatisfiable)
				break
			}
		}
	}

	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("plugin %s: invalid args: %s", Name, strings.Join(problems, "; "))
}
