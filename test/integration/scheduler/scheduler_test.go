// Package scheduler runs the real kubeparts-scheduler binary, configured with
// the shipped profiles (config/scheduler), against a real kube-apiserver:
// pods with each kind of constraint land where expected, unschedulable pods get
// the stock FailedScheduling message, gangs go all or nothing, and the
// second-scheduler mode keeps to its own pods and its own lease.
//
// Nodes are plain Node objects (nothing runs the pods); tests run one after
// the other and delete their nodes, so each sees only its own.
package scheduler

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/kubeparts/kubeparts/api/v1alpha1"
	"github.com/kubeparts/kubeparts/config"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) { os.Exit(framework.Main(m, "scheduler", &env, framework.WithCRDs())) }

func binary(t *testing.T) string { return framework.Binary(t, "kubeparts-scheduler") }

// schedulerConfig renders a shipped profile for this apiserver; edit adjusts
// the decoded document (leader election, plugin args).
func schedulerConfig(t *testing.T, shipped []byte, edit func(cfg map[string]any)) string {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal(shipped, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": env.WriteKubeconfig(t), "qps": 100, "burst": 200}
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	if edit != nil {
		edit(cfg)
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startScheduler runs the binary until the test ends; its log goes to test/logs/scheduler/.
func startScheduler(t *testing.T, configPath string) {
	t.Helper()
	env.Run(t, "kubeparts-scheduler", "--config="+configPath, "--secure-port=0", "-v=2")
}

func shippedProfile(t *testing.T) string {
	return schedulerConfig(t, config.SchedulerProfile, nil)
}

// nodeSpec describes a fake node: capacity and placement attributes.
type nodeSpec struct {
	name          string
	cpu           string
	pods          int
	labels        map[string]string
	taints        []corev1.Taint
	unschedulable bool
}

// makeNodes creates the nodes and removes them when the test ends. The
// apiserver's admission adds a not-ready taint to new nodes; it is replaced by
// the spec's own taints, as a kubelet reporting Ready would get.
func makeNodes(t *testing.T, specs ...nodeSpec) {
	t.Helper()
	ctx := context.Background()
	for _, s := range specs {
		labels := map[string]string{corev1.LabelHostname: s.name}
		for k, v := range s.labels {
			labels[k] = v
		}
		pods := s.pods
		if pods == 0 {
			pods = 110
		}
		alloc := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(s.cpu),
			corev1.ResourceMemory: resource.MustParse("32Gi"),
			corev1.ResourcePods:   *resource.NewQuantity(int64(pods), resource.DecimalSI),
		}
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: s.name, Labels: labels},
			Status: corev1.NodeStatus{Capacity: alloc, Allocatable: alloc,
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}},
		}
		created, err := env.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.CoreV1().Nodes().Delete(context.Background(), s.name, metav1.DeleteOptions{}) })
		created.Spec.Taints, created.Spec.Unschedulable = s.taints, s.unschedulable
		if _, err := env.Client.CoreV1().Nodes().Update(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// newPod builds a pause pod asking for cpu; mutate adds the constraint under test.
func newPod(ns, name, cpu string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "registry.k8s.io/pause:3.10",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}},
		}}},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func createPods(t *testing.T, pods ...*corev1.Pod) {
	t.Helper()
	for _, p := range pods {
		if _, err := env.Client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// nodeOf waits until the pod is bound and returns its node.
func nodeOf(t *testing.T, ns, name string) string {
	t.Helper()
	var node string
	framework.Eventually(t, 30*time.Second, "pod "+name+" bound", func() error {
		p, err := env.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if node = p.Spec.NodeName; node == "" {
			return fmt.Errorf("not bound yet")
		}
		return nil
	})
	return node
}

// boundCount counts the namespace's pods with the label that have a node.
func boundCount(t *testing.T, ns, selector string) int {
	t.Helper()
	pods, err := env.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" {
			n++
		}
	}
	return n
}

// stays asserts cond holds during d, checking every 200ms: the way to show
// something does NOT happen.
func stays(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

func namespace(t *testing.T, prefix string) string {
	t.Helper()
	ns, err := env.Namespace(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	// Pods left pending would be picked up by the next test's scheduler.
	t.Cleanup(func() {
		_ = env.Client.CoreV1().Pods(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{})
	})
	return ns
}

// TestPlacement: each constraint our plugins implement sends pods where the
// stock scheduler would.
func TestPlacement(t *testing.T) {
	startScheduler(t, shippedProfile(t))
	ns := namespace(t, "placement-")
	makeNodes(t,
		nodeSpec{name: "small", cpu: "1", labels: map[string]string{corev1.LabelTopologyZone: "zone-a", "disk": "hdd"}},
		nodeSpec{name: "big", cpu: "8", labels: map[string]string{corev1.LabelTopologyZone: "zone-b", "disk": "ssd"}},
		nodeSpec{name: "tainted", cpu: "8", labels: map[string]string{corev1.LabelTopologyZone: "zone-c"},
			taints: []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}},
		nodeSpec{name: "cordoned", cpu: "16", unschedulable: true, labels: map[string]string{corev1.LabelTopologyZone: "zone-c"}},
	)
	for _, tc := range []struct {
		pod   *corev1.Pod
		nodes []string // any of
	}{
		// 2 cpu fits only "big" and "tainted"; "tainted" is not tolerated, "cordoned" is cordoned.
		{newPod(ns, "needs-2-cpu", "2"), []string{"big"}},
		{newPod(ns, "selector", "100m", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "hdd"} }), []string{"small"}},
		{newPod(ns, "required-affinity", "100m", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelTopologyZone, Operator: corev1.NodeSelectorOpNotIn, Values: []string{"zone-b"}}}}}}}}
		}), []string{"small"}},
		{newPod(ns, "match-fields", "100m", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"small"}}}}}}}}
		}), []string{"small"}},
		{newPod(ns, "preferred-affinity", "100m", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
				{Weight: 100, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"hdd"}}}}}}}}
		}), []string{"small"}},
		{newPod(ns, "tolerates-dedicated", "100m", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
			p.Spec.NodeSelector = map[string]string{corev1.LabelTopologyZone: "zone-c"}
		}), []string{"tainted"}},
		{newPod(ns, "tolerates-cordon", "100m", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"cordoned"}}}}}}}}
		}), []string{"cordoned"}},
	} {
		createPods(t, tc.pod)
		if got := nodeOf(t, ns, tc.pod.Name); !contains(tc.nodes, got) {
			t.Errorf("pod %s on %s, want one of %v", tc.pod.Name, got, tc.nodes)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestZoneSpread: six replicas with a hard zone constraint end up two per
// zone; replicas of one owner with no constraint of their own are spread by
// the default constraints.
func TestZoneSpread(t *testing.T) {
	startScheduler(t, shippedProfile(t))
	ns := namespace(t, "spread-")
	var specs []nodeSpec
	for i, z := range []string{"zone-a", "zone-a", "zone-b", "zone-c"} {
		specs = append(specs, nodeSpec{name: fmt.Sprintf("spread-%d", i), cpu: "16", labels: map[string]string{corev1.LabelTopologyZone: z}})
	}
	makeNodes(t, specs...)
	for i := range 6 {
		createPods(t, newPod(ns, fmt.Sprintf("hard-%d", i), "100m", func(p *corev1.Pod) {
			p.Labels["app"] = "hard"
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
				MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.DoNotSchedule,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "hard"}},
			}}
		}))
	}
	zoneOf := map[string]string{}
	for _, s := range specs {
		zoneOf[s.name] = s.labels[corev1.LabelTopologyZone]
	}
	perZone := map[string]int{}
	for i := range 6 {
		perZone[zoneOf[nodeOf(t, ns, fmt.Sprintf("hard-%d", i))]]++
	}
	for _, z := range []string{"zone-a", "zone-b", "zone-c"} {
		if perZone[z] != 2 {
			t.Errorf("hard constraint: %v pods per zone, want 2 in each", perZone)
			break
		}
	}
}

// TestFailedSchedulingMessage: an unschedulable pod stays Pending with the
// stock wording in its FailedScheduling event, which is what `kubectl
// describe pod` shows.
func TestFailedSchedulingMessage(t *testing.T) {
	startScheduler(t, shippedProfile(t))
	ns := namespace(t, "failed-")
	makeNodes(t,
		nodeSpec{name: "fs-1", cpu: "2"},
		nodeSpec{name: "fs-2", cpu: "2", taints: []corev1.Taint{{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule}}},
	)
	createPods(t, newPod(ns, "too-big", "4"))
	want := "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint(s)."
	framework.Eventually(t, 30*time.Second, "FailedScheduling event", func() error {
		evs, err := env.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=too-big"})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedScheduling" && strings.HasPrefix(e.Message, want) {
				return nil
			}
		}
		var got []string
		for _, e := range evs.Items {
			got = append(got, e.Reason+": "+e.Message)
		}
		return fmt.Errorf("events %q, want FailedScheduling starting %q", got, want)
	})
}

var podGroups = v1alpha1.GroupVersion.WithResource("podgroups")

func createPodGroup(t *testing.T, ns, name string, minMember, timeout int) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	pg := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": "PodGroup",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"minMember": int64(minMember), "scheduleTimeoutSeconds": int64(timeout)},
	}}
	if _, err := dyn.Resource(podGroups).Namespace(ns).Create(context.Background(), pg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func gangPods(ns, group string, n int, cpu string) []*corev1.Pod {
	var pods []*corev1.Pod
	for i := range n {
		pods = append(pods, newPod(ns, fmt.Sprintf("%s-%d", group, i), cpu, func(p *corev1.Pod) {
			p.Labels[v1alpha1.PodGroupLabel] = group
		}))
	}
	return pods
}

// TestGangWaitsForRoom: a gang of 4 with room for 3 places none of them (no
// pod is bound, so no node is held by a group that cannot run); once a slot
// frees, all 4 are scheduled together.
func TestGangWaitsForRoom(t *testing.T) {
	startScheduler(t, shippedProfile(t))
	ns := namespace(t, "gang-")
	makeNodes(t, nodeSpec{name: "gang-1", cpu: "2"}, nodeSpec{name: "gang-2", cpu: "2"})
	createPods(t, newPod(ns, "filler", "1"))
	nodeOf(t, ns, "filler")
	createPodGroup(t, ns, "job", 4, 30)
	createPods(t, gangPods(ns, "job", 4, "1")...)
	sel := v1alpha1.PodGroupLabel + "=job"
	stays(t, 5*time.Second, "gang of 4 on 3 free slots", func() error {
		if n := boundCount(t, ns, sel); n != 0 {
			return fmt.Errorf("%d of the gang's pods were bound", n)
		}
		return nil
	})
	if err := env.Client.CoreV1().Pods(ns).Delete(context.Background(), "filler", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 45*time.Second, "all 4 gang pods bound after a slot freed", func() error {
		if n := boundCount(t, ns, sel); n != 4 {
			return fmt.Errorf("%d of 4 bound", n)
		}
		return nil
	})
}

// TestCompetingGangs: two gangs of 3 created interleaved on 4 slots never
// deadlock holding 2 each: one completes, the other waits with nothing bound,
// and completes once the first is gone.
func TestCompetingGangs(t *testing.T) {
	startScheduler(t, shippedProfile(t))
	ns := namespace(t, "gangs-")
	makeNodes(t, nodeSpec{name: "gangs-1", cpu: "2"}, nodeSpec{name: "gangs-2", cpu: "2"})
	createPodGroup(t, ns, "a", 3, 30)
	createPodGroup(t, ns, "b", 3, 30)
	a, b := gangPods(ns, "a", 3, "1"), gangPods(ns, "b", 3, "1")
	createPods(t, a[0], b[0], a[1], b[1], a[2], b[2])
	selA, selB := v1alpha1.PodGroupLabel+"=a", v1alpha1.PodGroupLabel+"=b"
	var winner, loser string
	framework.Eventually(t, 60*time.Second, "one gang complete", func() error {
		na, nb := boundCount(t, ns, selA), boundCount(t, ns, selB)
		switch {
		case na == 3:
			winner, loser = "a", "b"
		case nb == 3:
			winner, loser = "b", "a"
		default:
			return fmt.Errorf("bound: a=%d b=%d", na, nb)
		}
		return nil
	})
	if n := boundCount(t, ns, v1alpha1.PodGroupLabel+"="+loser); n != 0 {
		t.Fatalf("gang %s has %d pods bound while %s holds the room: a partial gang", loser, n, winner)
	}
	// The winner's job is done: its pods go away and the other gang gets the room.
	for i := range 3 {
		if err := env.Client.CoreV1().Pods(ns).Delete(context.Background(), fmt.Sprintf("%s-%d", winner, i), metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
	}
	framework.Eventually(t, 60*time.Second, "second gang complete", func() error {
		if n := boundCount(t, ns, v1alpha1.PodGroupLabel+"="+loser); n != 3 {
			return fmt.Errorf("gang %s: %d of 3 bound", loser, n)
		}
		return nil
	})
}

// TestSecondScheduler: with the shipped second-scheduler config, it schedules
// only pods naming it, and holds kube-system/kubeparts-scheduler, never the
// stock kube-scheduler lease.
func TestSecondScheduler(t *testing.T) {
	cfg := schedulerConfig(t, readShipped(t, "second-scheduler.yaml"), func(cfg map[string]any) {
		cfg["leaderElection"] = map[string]any{"leaderElect": true, "resourceNamespace": "kube-system", "resourceName": "kubeparts-scheduler",
			"leaseDuration": "4s", "renewDeadline": "3s", "retryPeriod": "1s"}
	})
	startScheduler(t, cfg)
	ns := namespace(t, "second-")
	makeNodes(t, nodeSpec{name: "second-1", cpu: "4"})
	createPods(t,
		newPod(ns, "ours", "100m", func(p *corev1.Pod) { p.Spec.SchedulerName = "kubeparts-scheduler" }),
		newPod(ns, "stock", "100m"),
	)
	nodeOf(t, ns, "ours")
	lease, err := env.Client.CoordinationV1().Leases("kube-system").Get(context.Background(), "kubeparts-scheduler", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("lease kube-system/kubeparts-scheduler: %v %+v", err, lease)
	}
	if _, err := env.Client.CoordinationV1().Leases("kube-system").Get(context.Background(), "kube-scheduler", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the stock kube-scheduler lease exists (err %v): the second scheduler must not take it", err)
	}
	stays(t, 3*time.Second, "a default-scheduler pod left to the stock scheduler", func() error {
		p, err := env.Client.CoreV1().Pods(ns).Get(context.Background(), "stock", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Spec.NodeName != "" {
			return fmt.Errorf("bound to %s by the second scheduler", p.Spec.NodeName)
		}
		return nil
	})
}

func readShipped(t *testing.T, name string) []byte {
	t.Helper()
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "scheduler", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestBadPluginArgs: a mistake in plugin args stops the scheduler at start-up
// with a message naming the plugin and field, instead of running with defaults.
func TestBadPluginArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args map[string]any
		want string
	}{
		{"KubepartsNodeResourcesFit", map[string]any{"scoringStrategy": map[string]any{"type": "LeastAllocated", "resources": []any{map[string]any{"name": "cpu", "weight": 500}}}}, `weight of resource "cpu" must be in (0, 100]`},
		{"KubepartsNodeResourcesFit", map[string]any{"scoringStrategy": map[string]any{"type": "Fancy"}}, `Unsupported value: "Fancy"`},
		{"KubepartsNodeResourcesFit", map[string]any{"scoringStrategy": map[string]any{"type": "MostAllocated", "resources": []any{map[string]any{"name": "gpu", "weight": 1}}}}, `"gpu": unknown resource`},
		{"KubepartsPodTopologySpread", map[string]any{"defaultingType": "Sometimes"}, "defaultingType"},
		{"KubepartsGang", map[string]any{"timeout": 3}, "takes no args"},
	} {
		cfg := schedulerConfig(t, config.SchedulerProfile, func(cfg map[string]any) {
			prof := cfg["profiles"].([]any)[0].(map[string]any)
			prof["pluginConfig"] = []any{map[string]any{"name": tc.name, "args": tc.args}}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, binary(t), "--config="+cfg, "--secure-port=0").CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			t.Errorf("%s %v: still running after 30s", tc.name, tc.args)
			continue
		}
		// klog quotes the error: compare the unescaped text.
		text := strings.ReplaceAll(string(out), `\"`, `"`)
		if err == nil || !strings.Contains(text, tc.want) || !strings.Contains(text, tc.name) {
			t.Errorf("%s %v: err %v, output %q; want a failure naming the plugin and saying %q", tc.name, tc.args, err, lastLines(string(out), 5), tc.want)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestGangMembersArriveLate: a group's first pod is turned away while it is
// alone ("has 1 of its minMember 2 pods"); creating the second brings the
// first back at once (not after the scheduler's 5-minute flush) and both run.
func TestGangMembersArriveLate(t *testing.T) {
	startScheduler(t, shippedProfile(t))
	ns := namespace(t, "late-")
	makeNodes(t, nodeSpec{name: "late-1", cpu: "4"})
	createPodGroup(t, ns, "pair", 2, 30)
	pods := gangPods(ns, "pair", 2, "1")
	createPods(t, pods[0])
	framework.Eventually(t, 30*time.Second, "first member turned away", func() error {
		evs, err := env.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=pair-0"})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedScheduling" && strings.Contains(e.Message, "has 1 of its minMember 2 pods") {
				return nil
			}
		}
		return fmt.Errorf("no FailedScheduling event about the missing member yet")
	})
	createPods(t, pods[1])
	framework.Eventually(t, 20*time.Second, "both members bound", func() error {
		if n := boundCount(t, ns, v1alpha1.PodGroupLabel+"=pair"); n != 2 {
			return fmt.Errorf("%d of 2 bound", n)
		}
		return nil
	})
}
