package podtopologyspread

import (
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2/ktesting"
	configv1 "k8s.io/kube-scheduler/config/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/validation"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/difftest"
)

var (
	unschedulable = fwk.NewStatus(fwk.Unschedulable, reasonSkew)
	missingLabel  = fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reasonMissingLabel)
)

// fourNodes: two in zone-a, one each in zone-b and zone-c.
func fourNodes() []*corev1.Node {
	return []*corev1.Node{
		mkNode("a1").zone("zone-a").obj(),
		mkNode("a2").zone("zone-a").obj(),
		mkNode("b1").zone("zone-b").obj(),
		mkNode("c1").zone("zone-c").obj(),
	}
}

// orderNodes: a1 lacks the rack label, so it is no domain of any
// constraint, but zone-a still is through a2.
func orderNodes() []*corev1.Node {
	return []*corev1.Node{
		mkNode("a1").zone("zone-a").obj(),
		mkNode("a2").zone("zone-a").label("rack", "r2").obj(),
		mkNode("b1").zone("zone-b").label("rack", "r1").obj(),
	}
}

// webPods places n pods labelled app=web on each named node.
func webPods(counts map[string]int) []*corev1.Pod {
	var out []*corev1.Pod
	for _, node := range slices.Sorted(maps.Keys(counts)) {
		for i := range counts[node] {
			out = append(out, mkPod(node+"-web-"+string(rune('0'+i))).label("app", "web").on(node).obj())
		}
	}
	return out
}

func TestFilter(t *testing.T) {
	web := selector("app", "web")
	listArgs := &configv1.PodTopologySpreadArgs{
		DefaultingType: configv1.ListDefaulting,
		DefaultConstraints: []corev1.TopologySpreadConstraint{
			{TopologyKey: corev1.LabelTopologyZone, MaxSkew: 1, WhenUnsatisfiable: corev1.DoNotSchedule},
		},
	}
	tests := []struct {
		name  string
		nodes []*corev1.Node
		pods  []*corev1.Pod
		objs  []runtime.Object
		args  *configv1.PodTopologySpreadArgs
		pod   *corev1.Pod
		want  map[string]*fwk.Status // by node; absent means it passes
	}{
		{
			name: "maxSkew 1 keeps the pod out of the fullest zone",
			pods: webPods(map[string]int{"a1": 2, "b1": 1, "c1": 1}),
			pod:  mkPod("p").label("app", "web").spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web).obj(),
			want: map[string]*fwk.Status{"a1": unschedulable, "a2": unschedulable},
		},
		{
			name: "maxSkew 2 tolerates the same spread",
			pods: webPods(map[string]int{"a1": 2, "b1": 1, "c1": 1}),
			pod:  mkPod("p").label("app", "web").spread(corev1.LabelTopologyZone, 2, corev1.DoNotSchedule, web).obj(),
		},
		{
			name: "a pod its selector does not match does not add to the skew",
			pods: webPods(map[string]int{"a1": 2, "b1": 1, "c1": 1}),
			pod:  mkPod("p").label("app", "db").spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web).obj(),
		},
		{
			name:  "a node without the topology label is unresolvable",
			nodes: append(fourNodes(), mkNode("x1").obj()),
			pod:   mkPod("p").label("app", "web").spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web).obj(),
			want:  map[string]*fwk.Status{"x1": missingLabel},
		},
		{
			name:  "constraints are checked in order: a skew failure before a missing label",
			nodes: orderNodes(),
			pods:  webPods(map[string]int{"a2": 2}),
			pod: mkPod("p").label("app", "web").
				spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web).
				spread("rack", 1, corev1.DoNotSchedule, web).obj(),
			want: map[string]*fwk.Status{"a1": unschedulable, "a2": unschedulable},
		},
		{
			name:  "constraints are checked in order: a missing label before a skew failure",
			nodes: orderNodes(),
			pods:  webPods(map[string]int{"a2": 2}),
			pod: mkPod("p").label("app", "web").
				spread("rack", 1, corev1.DoNotSchedule, web).
				spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web).obj(),
			want: map[string]*fwk.Status{"a1": missingLabel, "a2": unschedulable},
		},
		{
			name:  "fewer domains than minDomains: the global minimum is 0",
			nodes: []*corev1.Node{mkNode("a1").zone("zone-a").obj(), mkNode("b1").zone("zone-b").obj()},
			pods:  webPods(map[string]int{"a1": 1, "b1": 1}),
			pod:   mkPod("p").label("app", "web").spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web, minDomains(3)).obj(),
			want:  map[string]*fwk.Status{"a1": unschedulable, "b1": unschedulable},
		},
		{
			name:  "as many domains as minDomains: the real minimum counts",
			nodes: []*corev1.Node{mkNode("a1").zone("zone-a").obj(), mkNode("b1").zone("zone-b").obj()},
			pods:  webPods(map[string]int{"a1": 1, "b1": 1}),
			pod:   mkPod("p").label("app", "web").spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web, minDomains(2)).obj(),
		},
		{
			name: "terminating pods and pods of other namespaces do not count",
			pods: []*corev1.Pod{
				mkPod("t1").label("app", "web").on("a1").terminating().obj(),
				mkPod("t2").label("app", "web").on("a1").terminating().obj(),
				mkPod("o1").label("app", "web").on("a1").ns("team-a").obj(),
				mkPod("o2").label("app", "web").on("a2").ns("team-a").obj(),
			},
			pod: mkPod("p").label("app", "web").spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web).obj(),
		},
		{
			name: "hostname spreading",
			pods: webPods(map[string]int{"a1": 1, "a2": 1, "b1": 1}),
			pod:  mkPod("p").label("app", "web").spread(corev1.LabelHostname, 1, corev1.DoNotSchedule, web).obj(),
			want: map[string]*fwk.Status{"a1": unschedulable, "a2": unschedulable, "b1": unschedulable},
		},
		{
			name: "nodeAffinityPolicy Honor (default): nodes the pod cannot go to are no domain",
			nodes: []*corev1.Node{
				mkNode("a1").zone("zone-a").label("disk", "ssd").obj(),
				mkNode("b1").zone("zone-b").label("disk", "ssd").obj(),
				mkNode("c1").zone("zone-c").obj(),
			},
			pods: webPods(map[string]int{"a1": 1, "b1": 1}),
			pod:  mkPod("p").label("app", "web").nodeSelector("disk", "ssd").spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web).obj(),
		},
		{
			name: "nodeAffinityPolicy Ignore: every node is a domain",
			nodes: []*corev1.Node{
				mkNode("a1").zone("zone-a").label("disk", "ssd").obj(),
				mkNode("b1").zone("zone-b").label("disk", "ssd").obj(),
				mkNode("c1").zone("zone-c").obj(),
			},
			pods: webPods(map[string]int{"a1": 1, "b1": 1}),
			pod: mkPod("p").label("app", "web").nodeSelector("disk", "ssd").
				spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web, affinityPolicy(corev1.NodeInclusionPolicyIgnore)).obj(),
			want: map[string]*fwk.Status{"a1": unschedulable, "b1": unschedulable},
		},
		{
			name: "nodeTaintsPolicy Ignore (default): tainted nodes are domains",
			nodes: []*corev1.Node{
				mkNode("a1").zone("zone-a").obj(),
				mkNode("b1").zone("zone-b").obj(),
				mkNode("c1").zone("zone-c").taint("dedicated", corev1.TaintEffectNoSchedule).obj(),
			},
			pods: webPods(map[string]int{"a1": 1, "b1": 1}),
			pod:  mkPod("p").label("app", "web").spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web).obj(),
			want: map[string]*fwk.Status{"a1": unschedulable, "b1": unschedulable},
		},
		{
			name: "nodeTaintsPolicy Honor: untolerated tainted nodes are no domain",
			nodes: []*corev1.Node{
				mkNode("a1").zone("zone-a").obj(),
				mkNode("b1").zone("zone-b").obj(),
				mkNode("c1").zone("zone-c").taint("dedicated", corev1.TaintEffectNoSchedule).obj(),
			},
			pods: webPods(map[string]int{"a1": 1, "b1": 1}),
			pod: mkPod("p").label("app", "web").
				spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web, taintsPolicy(corev1.NodeInclusionPolicyHonor)).obj(),
		},
		{
			name: "nodeTaintsPolicy Honor: a tolerated taint keeps the domain",
			nodes: []*corev1.Node{
				mkNode("a1").zone("zone-a").obj(),
				mkNode("b1").zone("zone-b").obj(),
				mkNode("c1").zone("zone-c").taint("dedicated", corev1.TaintEffectNoSchedule).obj(),
			},
			pods: webPods(map[string]int{"a1": 1, "b1": 1}),
			pod: mkPod("p").label("app", "web").tolerate("dedicated").
				spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web, taintsPolicy(corev1.NodeInclusionPolicyHonor)).obj(),
			want: map[string]*fwk.Status{"a1": unschedulable, "b1": unschedulable},
		},
		{
			name: "nodeTaintsPolicy Honor: PreferNoSchedule does not exclude",
			nodes: []*corev1.Node{
				mkNode("a1").zone("zone-a").obj(),
				mkNode("b1").zone("zone-b").obj(),
				mkNode("c1").zone("zone-c").taint("dedicated", corev1.TaintEffectPreferNoSchedule).obj(),
			},
			pods: webPods(map[string]int{"a1": 1, "b1": 1}),
			pod: mkPod("p").label("app", "web").
				spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web, taintsPolicy(corev1.NodeInclusionPolicyHonor)).obj(),
			want: map[string]*fwk.Status{"a1": unschedulable, "b1": unschedulable},
		},
		{
			name: "matchLabelKeys: only pods with the same values count",
			pods: []*corev1.Pod{
				mkPod("v1").label("app", "web").label("version", "v1").on("a1").obj(),
				mkPod("v2a").label("app", "web").label("version", "v2").on("b1").obj(),
				mkPod("v2b").label("app", "web").label("version", "v2").on("b1").obj(),
			},
			pod: mkPod("p").label("app", "web").label("version", "v2").
				spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web, matchLabelKeys("version")).obj(),
			want: map[string]*fwk.Status{"b1": unschedulable},
		},
		{
			name: "without matchLabelKeys all versions count",
			pods: []*corev1.Pod{
				mkPod("v1").label("app", "web").label("version", "v1").on("a1").obj(),
				mkPod("v2a").label("app", "web").label("version", "v2").on("b1").obj(),
				mkPod("v2b").label("app", "web").label("version", "v2").on("b1").obj(),
			},
			pod:  mkPod("p").label("app", "web").label("version", "v2").spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web).obj(),
			want: map[string]*fwk.Status{"a1": unschedulable, "a2": unschedulable, "b1": unschedulable},
		},
		{
			name: "ScheduleAnyway constraints do not filter",
			pods: webPods(map[string]int{"a1": 5}),
			pod:  mkPod("p").label("app", "web").spread(corev1.LabelTopologyZone, 1, corev1.ScheduleAnyway, web).obj(),
		},
		{
			name: "List default constraint with a Service selecting the pod",
			pods: webPods(map[string]int{"a1": 2, "b1": 1, "c1": 1}),
			objs: []runtime.Object{service("default", "web", map[string]string{"app": "web"})},
			args: listArgs,
			pod:  mkPod("p").label("app", "web").obj(),
			want: map[string]*fwk.Status{"a1": unschedulable, "a2": unschedulable},
		},
		{
			name: "List default constraint with a ReplicaSet owning the pod",
			pods: webPods(map[string]int{"a1": 2, "b1": 1, "c1": 1}),
			objs: []runtime.Object{replicaSet("default", "rs", selector("app", "web"))},
			args: listArgs,
			pod:  mkPod("p").label("app", "web").ownedBy("ReplicaSet", "rs").obj(),
			want: map[string]*fwk.Status{"a1": unschedulable, "a2": unschedulable},
		},
		{
			name: "List default constraint: nothing selects the pod",
			pods: webPods(map[string]int{"a1": 2, "b1": 1, "c1": 1}),
			objs: []runtime.Object{service("team-a", "web", map[string]string{"app": "web"})},
			args: listArgs,
			pod:  mkPod("p").label("app", "web").obj(),
		},
		{
			name: "own constraints replace the default ones",
			pods: webPods(map[string]int{"a1": 2, "b1": 1, "c1": 1}),
			objs: []runtime.Object{service("default", "web", map[string]string{"app": "web"})},
			args: listArgs,
			pod:  mkPod("p").label("app", "web").spread(corev1.LabelHostname, 1, corev1.ScheduleAnyway, web).obj(),
		},
		{
			name: "System defaults never filter",
			pods: webPods(map[string]int{"a1": 5}),
			objs: []runtime.Object{service("default", "web", map[string]string{"app": "web"})},
			pod:  mkPod("p").label("app", "web").obj(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			nodes := tt.nodes
			if nodes == nil {
				nodes = fourNodes()
			}
			env, pl := newEnvAndPlugin(t, ctx, nodes, tt.pods, tt.args, tt.objs...)
			got := env.Filter(ctx, pl, tt.pod)
			for i, ni := range env.NodeInfos {
				want := tt.want[ni.Node().Name]
				if !difftest.SameStatus(got[i], want) {
					t.Errorf("node %s: got %s, want %s", ni.Node().Name, difftest.Describe(got[i]), difftest.Describe(want))
				}
			}
		})
	}
}

func TestScore(t *testing.T) {
	web := selector("app", "web")
	tests := []struct {
		name  string
		nodes []*corev1.Node
		pods  []*corev1.Pod
		objs  []runtime.Object
		pod   *corev1.Pod
		want  []int64 // in the order of nodes
	}{
		{
			// weight ln(5); raw 2*1.61=3, 0, 1.61=2; normalized 100*(3+0-raw)/3.
			name: "hostname: fewer matching pods score higher",
			nodes: []*corev1.Node{
				mkNode("n1").obj(), mkNode("n2").obj(), mkNode("n3").obj(),
			},
			pods: webPods(map[string]int{"n1": 2, "n3": 1}),
			pod:  mkPod("p").label("app", "web").spread(corev1.LabelHostname, 1, corev1.ScheduleAnyway, web).obj(),
			want: []int64{0, 100, 33},
		},
		{
			// Two domains, weight ln(4); maxSkew 2 adds 1: raw a1=round(3.77)=4, b1=1.
			name: "zone: a node without the label scores 0",
			nodes: []*corev1.Node{
				mkNode("a1").zone("zone-a").obj(), mkNode("b1").zone("zone-b").obj(), mkNode("x1").obj(),
			},
			pods: webPods(map[string]int{"a1": 2, "x1": 3}),
			pod:  mkPod("p").label("app", "web").spread(corev1.LabelTopologyZone, 2, corev1.ScheduleAnyway, web).obj(),
			want: []int64{25, 100, 0},
		},
		{
			// System defaults tolerate the zoneless node: hostname ln(5) + 2,
			// zone (domains zone-a and "") ln(4) + 4 for nodes with a zone.
			// raw: a1 = 1.61+2 + 1.39+4 = 9, a2 = 2 + 5.39 = 7, x1 = 1.61+2 = 4.
			name: "System defaults with a ReplicaSet",
			nodes: []*corev1.Node{
				mkNode("a1").zone("zone-a").obj(), mkNode("a2").zone("zone-a").obj(), mkNode("x1").obj(),
			},
			pods: webPods(map[string]int{"a1": 1, "x1": 1}),
			objs: []runtime.Object{replicaSet("default", "rs", selector("app", "web"))},
			pod:  mkPod("p").label("app", "web").ownedBy("ReplicaSet", "rs").obj(),
			want: []int64{44, 66, 100},
		},
		{
			name:  "nothing to spread: no score",
			nodes: fourNodes(),
			pods:  webPods(map[string]int{"a1": 1}),
			pod:   mkPod("p").label("app", "web").obj(),
			want:  []int64{0, 0, 0, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			env, pl := newEnvAndPlugin(t, ctx, tt.nodes, tt.pods, nil, tt.objs...)
			got, st := env.Score(ctx, pl, tt.pod, env.NodeInfos)
			if !st.IsSuccess() {
				t.Fatalf("Score: %v", st)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("scores %v, want %v", got, tt.want)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	zone := func(mut func(*corev1.TopologySpreadConstraint)) []corev1.TopologySpreadConstraint {
		c := corev1.TopologySpreadConstraint{TopologyKey: corev1.LabelTopologyZone, MaxSkew: 1, WhenUnsatisfiable: corev1.DoNotSchedule}
		if mut != nil {
			mut(&c)
		}
		return []corev1.TopologySpreadConstraint{c}
	}
	tests := []struct {
		name    string
		args    runtime.Object
		wantErr string // substring; empty for success
		system  bool   // expected to end up with the system defaults
	}{
		{name: "no args", system: true},
		{name: "empty raw args", args: &runtime.Unknown{}, system: true},
		{name: "System", args: &configv1.PodTopologySpreadArgs{DefaultingType: configv1.SystemDefaulting}, system: true},
		{name: "List without constraints", args: &configv1.PodTopologySpreadArgs{DefaultingType: configv1.ListDefaulting}},
		{name: "List with constraints", args: &configv1.PodTopologySpreadArgs{DefaultingType: configv1.ListDefaulting, DefaultConstraints: zone(nil)}},
		{
			name:    "maxSkew 0",
			args:    &configv1.PodTopologySpreadArgs{DefaultingType: configv1.ListDefaulting, DefaultConstraints: zone(func(c *corev1.TopologySpreadConstraint) { c.MaxSkew = 0 })},
			wantErr: "defaultConstraints[0].maxSkew: must be greater than zero",
		},
		{
			name:    "System with constraints",
			args:    &configv1.PodTopologySpreadArgs{DefaultingType: configv1.SystemDefaulting, DefaultConstraints: zone(nil)},
			wantErr: `defaultingType: "System" cannot be combined with defaultConstraints`,
		},
		{
			name:    "constraints without defaultingType mean System, which conflicts",
			args:    &configv1.PodTopologySpreadArgs{DefaultConstraints: zone(nil)},
			wantErr: `defaultingType: "System" cannot be combined`,
		},
		{
			name:    "unknown defaultingType",
			args:    &configv1.PodTopologySpreadArgs{DefaultingType: "Sometimes"},
			wantErr: `defaultingType: unsupported value "Sometimes"`,
		},
		{
			name: "labelSelector in a default constraint",
			args: &configv1.PodTopologySpreadArgs{DefaultingType: configv1.ListDefaulting, DefaultConstraints: zone(func(c *corev1.TopologySpreadConstraint) {
				c.LabelSelector = &metav1.LabelSelector{}
			})},
			wantErr: "defaultConstraints[0].labelSelector: must not be set",
		},
		{
			name: "empty topologyKey",
			args: &configv1.PodTopologySpreadArgs{DefaultingType: configv1.ListDefaulting, DefaultConstraints: zone(func(c *corev1.TopologySpreadConstraint) {
				c.TopologyKey = ""
			})},
			wantErr: "defaultConstraints[0].topologyKey: must not be empty",
		},
		{
			name: "invalid topologyKey",
			args: &configv1.PodTopologySpreadArgs{DefaultingType: configv1.ListDefaulting, DefaultConstraints: zone(func(c *corev1.TopologySpreadConstraint) {
				c.TopologyKey = "not a key"
			})},
			wantErr: `defaultConstraints[0].topologyKey: "not a key" is not a valid label key`,
		},
		{
			name: "missing whenUnsatisfiable",
			args: &configv1.PodTopologySpreadArgs{DefaultingType: configv1.ListDefaulting, DefaultConstraints: zone(func(c *corev1.TopologySpreadConstraint) {
				c.WhenUnsatisfiable = ""
			})},
			wantErr: "defaultConstraints[0].whenUnsatisfiable: must not be empty",
		},
		{
			name: "unknown whenUnsatisfiable",
			args: &configv1.PodTopologySpreadArgs{DefaultingType: configv1.ListDefaulting, DefaultConstraints: zone(func(c *corev1.TopologySpreadConstraint) {
				c.WhenUnsatisfiable = "Maybe"
			})},
			wantErr: `defaultConstraints[0].whenUnsatisfiable: unsupported value "Maybe"`,
		},
		{
			name: "duplicate key and action",
			args: &configv1.PodTopologySpreadArgs{DefaultingType: configv1.ListDefaulting, DefaultConstraints: append(zone(nil), zone(func(c *corev1.TopologySpreadConstraint) {
				c.MaxSkew = 4
			})...)},
			wantErr: "defaultConstraints[1]: duplicates defaultConstraints[0]",
		},
		{
			name: "same key, other action is fine",
			args: &configv1.PodTopologySpreadArgs{DefaultingType: configv1.ListDefaulting, DefaultConstraints: append(zone(nil), zone(func(c *corev1.TopologySpreadConstraint) {
				c.WhenUnsatisfiable = corev1.ScheduleAnyway
			})...)},
		},
		{name: "undecodable", args: &runtime.Unknown{Raw: []byte("{"), ContentType: runtime.ContentTypeJSON}, wantErr: "plugin KubepartsPodTopologySpread: decoding args"},
		{
			name:    "misspelt field",
			args:    &runtime.Unknown{Raw: []byte(`{"defaultingType":"List","defaultConstraint":[]}`), ContentType: runtime.ContentTypeJSON},
			wantErr: "unknown field",
		},
		{
			name: "YAML",
			args: &runtime.Unknown{ContentType: runtime.ContentTypeYAML, Raw: []byte(
				"defaultingType: List\ndefaultConstraints:\n- maxSkew: 2\n  topologyKey: topology.kubernetes.io/zone\n  whenUnsatisfiable: ScheduleAnyway\n")},
		},
		{name: "already decoded by the scheduler", args: &configv1.NodeAffinityArgs{}, wantErr: "args were decoded as"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			env := difftest.NewEnv(t, &difftest.Cluster{})
			args := tt.args
			// Hand typed args over as the framework would: undecoded.
			if typed, ok := args.(*configv1.PodTopologySpreadArgs); ok {
				args = rawArgs(t, typed)
			}
			pl, err := New(ctx, args, env.Handle)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if got := pl.(*TopologySpread).systemDefaulted; got != tt.system {
					t.Errorf("systemDefaulted = %v, want %v", got, tt.system)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error %v, want it to contain %q", err, tt.wantErr)
			}

			// Accept and reject exactly what the stock scheduler does.
			typed, ok := tt.args.(*configv1.PodTopologySpreadArgs)
			if !ok {
				return
			}
			internal := config.PodTopologySpreadArgs{
				DefaultConstraints: typed.DefaultConstraints,
				DefaultingType:     config.PodTopologySpreadConstraintsDefaulting(typed.DefaultingType),
			}
			if internal.DefaultingType == "" {
				internal.DefaultingType = config.SystemDefaulting
			}
			upstreamErr := validation.ValidatePodTopologySpreadArgs(nil, &internal)
			if (upstreamErr == nil) != (err == nil) {
				t.Errorf("ours: %v; stock validation: %v", err, upstreamErr)
			}
		})
	}
}

// TestDomainsMinimum checks the O(1) minimum against a recount under random
// single steps, including domains created by AddPod and counts going negative.
func TestDomainsMinimum(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for round := range 200 {
		count := map[string]int{}
		for i := range r.IntN(5) {
			count[string(rune('a'+i))] = r.IntN(4)
		}
		d := newDomains(count)
		for step := range 50 {
			delta := 1
			if r.IntN(2) == 0 {
				delta = -1
			}
			v := string(rune('a' + r.IntN(6)))
			if r.IntN(4) == 0 {
				d = d.clone()
			}
			d.add(v, delta)
			want := noDomains
			for _, n := range d.count {
				want = min(want, n)
			}
			if d.min != want {
				t.Fatalf("round %d step %d: min %d, want %d (counts %v)", round, step, d.min, want, d.count)
			}
		}
	}
}

func TestSignPod(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	env := difftest.NewEnv(t, &difftest.Cluster{})
	withConstraint := mkPod("p").spread(corev1.LabelHostname, 1, corev1.ScheduleAnyway, selector("app", "web")).obj()
	plain := mkPod("q").obj()

	system, err := New(ctx, nil, env.Handle)
	if err != nil {
		t.Fatal(err)
	}
	list, err := New(ctx, rawArgs(t, &configv1.PodTopologySpreadArgs{DefaultingType: configv1.ListDefaulting}), env.Handle)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pl       fwk.Plugin
		pod      *corev1.Pod
		signable bool
	}{
		{system, withConstraint, false},
		{system, plain, false}, // might get the system defaults
		{list, withConstraint, false},
		{list, plain, true},
	} {
		frags, st := tc.pl.(fwk.SignPlugin).SignPod(ctx, tc.pod)
		if tc.signable != st.IsSuccess() || len(frags) != 0 {
			t.Errorf("SignPod(%s) = %v, %v; signable want %v", tc.pod.Name, frags, st, tc.signable)
		}
		if !tc.signable && st.Code() != fwk.Unschedulable {
			t.Errorf("SignPod(%s) code %v, want Unschedulable", tc.pod.Name, st.Code())
		}
	}
}

func TestQueueingHints(t *testing.T) {
	logger, ctx := ktesting.NewTestContext(t)
	env := difftest.NewEnv(t, &difftest.Cluster{})
	pl, err := New(ctx, nil, env.Handle)
	if err != nil {
		t.Fatal(err)
	}
	ts := pl.(*TopologySpread)
	web := selector("app", "web")
	pending := mkPod("p").label("app", "web").
		spread(corev1.LabelTopologyZone, 1, corev1.DoNotSchedule, web, taintsPolicy(corev1.NodeInclusionPolicyHonor)).obj()

	podTests := []struct {
		name     string
		old, cur *corev1.Pod
		want     fwk.QueueingHint
	}{
		{"matching pod added", nil, mkPod("x").label("app", "web").on("n").obj(), fwk.Queue},
		{"unrelated pod added", nil, mkPod("x").label("app", "db").on("n").obj(), fwk.QueueSkip},
		{"unbound pod added", nil, mkPod("x").label("app", "web").obj(), fwk.QueueSkip},
		{"pod of another namespace deleted", mkPod("x").label("app", "web").on("n").ns("team-a").obj(), nil, fwk.QueueSkip},
		{"matching pod deleted", mkPod("x").label("app", "web").on("n").obj(), nil, fwk.Queue},
		{"pod relabeled out of the selector", mkPod("x").label("app", "web").on("n").obj(), mkPod("x").label("app", "db").on("n").obj(), fwk.Queue},
		{"pod relabeled irrelevantly", mkPod("x").label("app", "web").on("n").obj(), mkPod("x").label("app", "web").label("x", "y").on("n").obj(), fwk.QueueSkip},
		{"pending pod got a toleration", pending, mkPod("p").label("app", "web").tolerate("dedicated").obj(), fwk.Queue},
	}
	for _, tt := range podTests {
		var oldObj, newObj any
		if tt.old != nil {
			oldObj = tt.old
		}
		if tt.cur != nil {
			newObj = tt.cur
		}
		got, err := ts.hintPodChange(logger, pending, oldObj, newObj)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}

	zoned := mkNode("n").zone("zone-a").obj()
	nodeTests := []struct {
		name     string
		old, cur *corev1.Node
		want     fwk.QueueingHint
	}{
		{"node with the key added", nil, zoned, fwk.Queue},
		{"node without the key added", nil, mkNode("n").obj(), fwk.QueueSkip},
		{"node moved zone", zoned, mkNode("n").zone("zone-b").obj(), fwk.Queue},
		{"node lost the key", zoned, mkNode("n").obj(), fwk.Queue},
		{"node got a taint", zoned, mkNode("n").zone("zone-a").taint("x", corev1.TaintEffectNoSchedule).obj(), fwk.Queue},
		{"node got another label", zoned, mkNode("n").zone("zone-a").label("x", "y").obj(), fwk.QueueSkip},
		{"node without the key deleted", mkNode("n").obj(), nil, fwk.QueueSkip},
	}
	for _, tt := range nodeTests {
		var oldObj, newObj any
		if tt.old != nil {
			oldObj = tt.old
		}
		if tt.cur != nil {
			newObj = tt.cur
		}
		got, err := ts.hintNodeChange(logger, pending, oldObj, newObj)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}
