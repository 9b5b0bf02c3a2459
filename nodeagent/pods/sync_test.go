package pods

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient/kubeclienttest"
	"github.com/kubeparts/kubeparts/nodeagent/podcri"
)

// syncHarness drives the pod manager's sync of one pod by hand, on the CRI
// fake: the test decides when containers exit and when time passes, and
// reads back what the manager wrote to the (fake) API.
type syncHarness struct {
	t   *testing.T
	m   *Manager
	rt  *critest.FakeRuntimeService
	cs  *fake.Clientset
	now time.Time
	key string
	// configs are the configs containers were last created with, by name.
	configs map[string]*runtimeapi.ContainerConfig
	// holdStop, when set, makes StopContainer of that container wait
	// until the channel is closed (a container slow to stop).
	holdStop map[string]chan struct{}
}

// recordingRuntime keeps the config of each container created.
type recordingRuntime struct {
	*critest.FakeRuntimeService
	h *syncHarness
}

func (r recordingRuntime) StopContainer(ctx context.Context, id string, timeout int64) error {
	r.Lock()
	name := ""
	if c := r.Containers[id]; c != nil {
		name = c.Metadata.Name
	}
	r.Unlock()
	if ch := r.h.holdStop[name]; ch != nil {
		<-ch
	}
	return r.FakeRuntimeService.StopContainer(ctx, id, timeout)
}

func (r recordingRuntime) CreateContainer(ctx context.Context, sandboxID string, cc *runtimeapi.ContainerConfig, sc *runtimeapi.PodSandboxConfig) (string, error) {
	r.h.configs[cc.Metadata.Name] = cc
	return r.FakeRuntimeService.CreateContainer(ctx, sandboxID, cc, sc)
}

func newSyncHarness(t *testing.T, pod *corev1.Pod) *syncHarness {
	t.Helper()
	rt, images := critest.NewFakeRuntimeService(), critest.NewFakeImageService()
	return newSyncHarnessOn(t, pod, rt, images)
}

func newSyncHarnessOn(t *testing.T, pod *corev1.Pod, rt *critest.FakeRuntimeService, images *critest.FakeImageService) *syncHarness {
	t.Helper()
	cs := fake.NewClientset(pod)
	h := &syncHarness{t: t, rt: rt, cs: cs, now: time.Unix(1_700_000_000, 0), key: pod.Namespace + "/" + pod.Name, configs: map[string]*runtimeapi.ContainerConfig{}}
	m, err := NewManager(kubeclienttest.FromClientset(cs), []Node{{Name: "n1", HostIP: "192.0.2.1", Runtime: recordingRuntime{rt, h}, Images: images,
		RuntimeName: "fake", DNS: podcri.DNS{ClusterDNS: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"}}})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	m.now = func() time.Time { return h.now }
	if err := m.inf.GetIndexer().Add(pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.queue.ShutDown)
	return h
}

// sync runs one sync of the pod and feeds what the API now holds back to
// the manager's informer cache, as the watch would.
func (h *syncHarness) sync() error {
	h.t.Helper()
	h.refresh()
	err := h.m.sync(context.Background(), h.key)
	h.refresh()
	return err
}

func (h *syncHarness) refresh() {
	ns, name := splitKey(h.key)
	p, gerr := h.cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if gerr == nil {
		_ = h.m.inf.GetIndexer().Update(p)
	} else if old, ok, _ := h.m.inf.GetIndexer().GetByKey(h.key); ok {
		_ = h.m.inf.GetIndexer().Delete(old)
	}
}

// mustSync syncs n times, failing the test on an error.
func (h *syncHarness) mustSync(n int) {
	h.t.Helper()
	for range n {
		if err := h.sync(); err != nil {
			h.t.Fatalf("sync: %v", err)
		}
	}
}

// recordStatusWrites keeps every pod status the manager writes; the
// returned function lists them so far.
func (h *syncHarness) recordStatusWrites() func() []*corev1.Pod {
	var mu sync.Mutex
	var writes []*corev1.Pod
	h.cs.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" {
			mu.Lock()
			writes = append(writes, a.(k8stesting.UpdateAction).GetObject().(*corev1.Pod).DeepCopy())
			mu.Unlock()
		}
		return false, nil, nil
	})
	return func() []*corev1.Pod {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(writes)
	}
}

// deleteGracefully deletes the pod as kube-apiserver does with a grace
// period: a deletion timestamp, the object still there.
func (h *syncHarness) deleteGracefully() {
	h.t.Helper()
	p := h.pod()
	now := metav1.NewTime(h.now)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, ptr.To[int64](30)
	if _, err := h.cs.CoreV1().Pods("ns").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func splitKey(key string) (string, string) {
	for i := range key {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}

// pod is the pod as the API holds it.
func (h *syncHarness) pod() *corev1.Pod {
	h.t.Helper()
	ns, name := splitKey(h.key)
	p, err := h.cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatalf("get pod: %v", err)
	}
	return p
}

// exit makes the newest container of that name exit with code.
func (h *syncHarness) exit(name string, code int32) {
	h.t.Helper()
	h.rt.Lock()
	defer h.rt.Unlock()
	var newest *critest.FakeContainer
	for _, c := range h.rt.Containers {
		if c.Metadata.Name == name && (newest == nil || c.Metadata.Attempt > newest.Metadata.Attempt) {
			newest = c
		}
	}
	if newest == nil || newest.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		h.t.Fatalf("no running container %s to exit", name)
	}
	newest.State, newest.ExitCode, newest.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, code, h.now.UnixNano()
}

// created counts the containers of that name the runtime has (every attempt).
func (h *syncHarness) created(name string) int {
	h.rt.Lock()
	defer h.rt.Unlock()
	n := 0
	for _, c := range h.rt.Containers {
		if c.Metadata.Name == name {
			n++
		}
	}
	return n
}

func syncTestPod(policy corev1.RestartPolicy, inits ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: types.UID("uid-p")},
		Spec: corev1.PodSpec{NodeName: "n1", RestartPolicy: policy, Containers: []corev1.Container{{Name: "app", Image: "img", ImagePullPolicy: corev1.PullIfNotPresent}}}}
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: n, Image: "img", ImagePullPolicy: corev1.PullIfNotPresent})
	}
	return p
}

func statusOf(list []corev1.ContainerStatus, name string) corev1.ContainerStatus {
	for _, s := range list {
		if s.Name == name {
			return s
		}
	}
	return corev1.ContainerStatus{}
}

func conditionOf(p *corev1.Pod, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

func waitingReason(s corev1.ContainerStatus) string {
	if s.State.Waiting == nil {
		return ""
	}
	return s.State.Waiting.Reason
}

// Init containers as the kubelet runs them (and as the upstream
// InitContainer conformance specs check): one at a time, the ones not yet
// run and the app containers waiting PodInitializing, a completed one ready,
// and a failed one failing the pod under restartPolicy Never or restarted
// with back-off otherwise.
func TestSyncInitContainers(t *testing.T) {
	t.Run("completed in order, then the app runs", func(t *testing.T) {
		h := newSyncHarness(t, syncTestPod(corev1.RestartPolicyAlways, "init1", "init2"))
		h.mustSync(1)
		p := h.pod()
		if got := waitingReason(statusOf(p.Status.InitContainerStatuses, "init2")); got != "PodInitializing" {
			t.Errorf("init2 waits %q while init1 runs, want PodInitializing", got)
		}
		if got := waitingReason(statusOf(p.Status.ContainerStatuses, "app")); got != "PodInitializing" {
			t.Errorf("app waits %q while init1 runs, want PodInitializing", got)
		}
		if h.created("init2") != 0 || h.created("app") != 0 {
			t.Fatalf("init2 or app started before init1 completed")
		}
		h.exit("init1", 0)
		h.mustSync(1)
		h.exit("init2", 0)
		h.mustSync(1)
		p = h.pod()
		for _, name := range []string{"init1", "init2"} {
			if s := statusOf(p.Status.InitContainerStatuses, name); !s.Ready || s.State.Terminated == nil || s.State.Terminated.Reason != "Completed" {
				t.Errorf("%s: ready %v state %+v, want ready and Completed", name, s.Ready, s.State)
			}
		}
		if p.Status.Phase != corev1.PodRunning || conditionOf(p, corev1.PodInitialized).Status != corev1.ConditionTrue {
			t.Errorf("phase %s initialized %s, want Running and True", p.Status.Phase, conditionOf(p, corev1.PodInitialized).Status)
		}
	})

	for _, tc := range []struct {
		policy corev1.RestartPolicy
		// restarted: the failed init container runs again (after back-off).
		restarted bool
	}{
		{corev1.RestartPolicyNever, false},
		{corev1.RestartPolicyOnFailure, true},
		{corev1.RestartPolicyAlways, true},
	} {
		t.Run("failed init container, restartPolicy "+string(tc.policy), func(t *testing.T) {
			h := newSyncHarness(t, syncTestPod(tc.policy, "init1", "init2"))
			h.mustSync(1)
			h.exit("init1", 0)
			h.mustSync(1)
			h.exit("init2", 1)
			h.mustSync(1)
			p := h.pod()
			init2 := statusOf(p.Status.InitContainerStatuses, "init2")
			app := statusOf(p.Status.ContainerStatuses, "app")
			if waitingReason(app) != "PodInitializing" || h.created("app") != 0 {
				t.Errorf("app %+v (created %d), want waiting PodInitializing and never started", app.State, h.created("app"))
			}
			init := conditionOf(p, corev1.PodInitialized)
			if init.Status != corev1.ConditionFalse || init.Reason != "ContainersNotInitialized" || init.Message != "containers with incomplete status: [init2]" {
				t.Errorf("Initialized condition %+v", init)
			}
			if !tc.restarted {
				if p.Status.Phase != corev1.PodFailed {
					t.Errorf("phase %s, want Failed", p.Status.Phase)
				}
				if init2.State.Terminated == nil || init2.State.Terminated.Reason != "Error" || init2.State.Terminated.ExitCode != 1 {
					t.Errorf("init2 state %+v, want terminated Error 1", init2.State)
				}
				if got := kubectlStatus(p); got != "Init:Error" {
					t.Errorf("kubectl STATUS %q, want Init:Error", got)
				}
				h.mustSync(2)
				if n := h.created("init2"); n != 1 {
					t.Errorf("init2 created %d times, want once under Never", n)
				}
				return
			}
			// First failure: restarted at once (the kubelet's back-off starts
			// at the second), then each restart waits.
			if p.Status.Phase != corev1.PodPending {
				t.Errorf("phase %s, want Pending", p.Status.Phase)
			}
			if n := h.created("init2"); n != 2 {
				t.Fatalf("init2 created %d times after its first failure, want 2", n)
			}
			h.exit("init2", 1)
			h.mustSync(1)
			p = h.pod()
			init2 = statusOf(p.Status.InitContainerStatuses, "init2")
			if waitingReason(init2) != "CrashLoopBackOff" || init2.LastTerminationState.Terminated == nil || init2.RestartCount != 1 {
				t.Errorf("init2 %+v, want waiting CrashLoopBackOff with its last exit and restartCount 1", init2)
			}
			if got := kubectlStatus(p); got != "Init:CrashLoopBackOff" {
				t.Errorf("kubectl STATUS %q, want Init:CrashLoopBackOff", got)
			}
			if n := h.created("init2"); n != 2 {
				t.Errorf("init2 restarted inside its back-off (%d attempts)", n)
			}
			h.now = h.now.Add(11 * time.Second)
			h.mustSync(1)
			if n := h.created("init2") + 0; n < 2 || statusOf(h.pod().Status.InitContainerStatuses, "init2").RestartCount != 2 {
				t.Errorf("init2 not restarted after its back-off: %+v", statusOf(h.pod().Status.InitContainerStatuses, "init2"))
			}
			if p := h.pod(); p.Status.Phase != corev1.PodPending || h.created("app") != 0 {
				t.Errorf("phase %s, app created %d: the app must wait for init2", p.Status.Phase, h.created("app"))
			}
		})
	}
}

// kubectlStatus is the STATUS column `kubectl get pods` shows for a pod in
// its init phase (kubectl's printer: Init:<reason> for an init container
// that failed or waits for a reason other than PodInitializing, else
// Init:<done>/<total>), or the phase past it.
func kubectlStatus(p *corev1.Pod) string {
	for i, s := range p.Status.InitContainerStatuses {
		switch {
		case s.State.Terminated != nil && s.State.Terminated.ExitCode == 0:
			continue
		case s.State.Terminated != nil:
			return "Init:" + s.State.Terminated.Reason
		case s.State.Waiting != nil && s.State.Waiting.Reason != "" && s.State.Waiting.Reason != "PodInitializing":
			return "Init:" + s.State.Waiting.Reason
		default:
			return "Init:" + itoa(i) + "/" + itoa(len(p.Spec.InitContainers))
		}
	}
	return string(p.Status.Phase)
}

func itoa(i int) string { return strconv.Itoa(i) }

// keptAbout names what the manager still keeps about uid.
func (m *Manager) keptAbout(uid types.UID) []string {
	var out []string
	m.lookup(uid, func(r *podRecord) { out = append(out, fmt.Sprintf("a record (%s, key %q)", r.phase, r.key)) })
	return out
}

// A pod deleted from the API with nothing left to say (force deletion)
// while its containers start: its sandbox goes, and nothing is kept about it.
func TestSyncForceDeletionMidStart(t *testing.T) {
	h := newSyncHarness(t, syncTestPod(corev1.RestartPolicyAlways, "init1"))
	h.mustSync(1)
	if len(h.rt.Sandboxes) != 1 {
		t.Fatalf("%d sandboxes, want 1", len(h.rt.Sandboxes))
	}
	if err := h.cs.CoreV1().Pods("ns").Delete(context.Background(), "p", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	h.mustSync(1)
	if n := len(h.rt.Sandboxes); n != 0 {
		t.Errorf("%d sandboxes left after the pod was force-deleted", n)
	}
	if kept := h.m.keptAbout("uid-p"); len(kept) > 0 {
		t.Errorf("still kept about the deleted pod after its sync: %v", kept)
	}
	// What a missed deletion leaves (only the admission and the queue
	// key, say) goes at housekeeping.
	h.m.withRecord("uid-q", func(r *podRecord) { r.key, r.admitted = "ns/q", true })
	h.m.housekeeping(context.Background())
	if kept := h.m.keptAbout("uid-q"); len(kept) > 0 {
		t.Errorf("housekeeping kept about a pod gone from the API: %v", kept)
	}
}

// A restarted agent adopts what runs: no container is created again, and
// the status it writes is the same.
func TestSyncAdoptsAfterRestart(t *testing.T) {
	pod := syncTestPod(corev1.RestartPolicyAlways, "init1")
	h := newSyncHarness(t, pod)
	h.mustSync(1)
	h.exit("init1", 0)
	h.mustSync(1)
	before := h.pod()
	if before.Status.Phase != corev1.PodRunning {
		t.Fatalf("phase %s before the restart", before.Status.Phase)
	}
	// A new manager on the same runtime, the pod as the API holds it.
	h2 := newSyncHarnessOn(t, before, h.rt, critest.NewFakeImageService())
	h2.mustSync(2)
	if h2.created("init1") != 1 || h2.created("app") != 1 {
		t.Errorf("containers created again after a restart: init1 %d app %d", h2.created("init1"), h2.created("app"))
	}
	after := h2.pod()
	if after.Status.Phase != corev1.PodRunning || statusOf(after.Status.ContainerStatuses, "app").RestartCount != 0 || !statusOf(after.Status.InitContainerStatuses, "init1").Ready {
		t.Errorf("status after adoption: %+v", after.Status)
	}
}

// An evicted pod: its containers stop and it is Failed/Evicted with the
// message, its containers' last state kept.
func TestSyncEviction(t *testing.T) {
	h := newSyncHarness(t, syncTestPod(corev1.RestartPolicyAlways))
	h.mustSync(1)
	h.m.setEviction("uid-p", eviction{evicted: true, message: "The node was low on resource: memory."})
	h.mustSync(2)
	p := h.pod()
	if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "Evicted" || p.Status.Message != "The node was low on resource: memory." {
		t.Errorf("status %s/%s %q, want Failed/Evicted", p.Status.Phase, p.Status.Reason, p.Status.Message)
	}
	h.rt.Lock()
	for _, c := range h.rt.Containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %s still runs after the eviction", c.Metadata.Name)
		}
	}
	h.rt.Unlock()
}

// The downward API's addresses are set in the first container's
// environment already, before any status was written (the upstream
// "should provide host IP and pod IP as an env var" specs).
func TestSyncDownwardAPIAddresses(t *testing.T) {
	pod := syncTestPod(corev1.RestartPolicyAlways)
	for _, f := range []string{"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"} {
		pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, corev1.EnvVar{Name: f,
			ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: f}}})
	}
	h := newSyncHarness(t, pod)
	h.mustSync(1)
	got := map[string]string{}
	for _, kv := range h.configs["app"].GetEnvs() {
		got[kv.Key] = string(kv.Value)
	}
	want := map[string]string{"status.hostIP": "192.0.2.1", "status.hostIPs": "192.0.2.1",
		"status.podIP": critest.FakePodSandboxIPs[0], "status.podIPs": critest.FakePodSandboxIPs[0]}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// activeDeadlineSeconds, counted from the pod's start time: past it the
// pod's containers stop and it is Failed/DeadlineExceeded (no disruption
// condition); a deadline shortened on a running pod counts too.
func TestSyncActiveDeadline(t *testing.T) {
	pod := syncTestPod(corev1.RestartPolicyAlways)
	pod.Spec.ActiveDeadlineSeconds = ptr.To[int64](600)
	h := newSyncHarness(t, pod)
	h.mustSync(2)
	p := h.pod()
	if p.Status.Phase != corev1.PodRunning || p.Status.StartTime == nil {
		t.Fatalf("phase %s start %v, want Running", p.Status.Phase, p.Status.StartTime)
	}
	h.now = p.Status.StartTime.Add(30 * time.Second)
	h.mustSync(1)
	if p := h.pod(); p.Status.Phase != corev1.PodRunning {
		t.Fatalf("phase %s 30 s into a 600 s deadline", p.Status.Phase)
	}
	// Shortened while it runs (the spec field is mutable downwards).
	p = h.pod()
	p.Spec.ActiveDeadlineSeconds = ptr.To[int64](5)
	if _, err := h.cs.CoreV1().Pods("ns").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.mustSync(2)
	p = h.pod()
	if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "DeadlineExceeded" || p.Status.Message != "Pod was active on the node longer than the specified deadline" {
		t.Errorf("status %s/%s %q, want Failed/DeadlineExceeded", p.Status.Phase, p.Status.Reason, p.Status.Message)
	}
	if c := conditionOf(p, corev1.DisruptionTarget); c.Type != "" {
		t.Errorf("DisruptionTarget %+v on a pod past its deadline", c)
	}
	h.rt.Lock()
	defer h.rt.Unlock()
	for _, c := range h.rt.Containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %s still runs past the deadline", c.Metadata.Name)
		}
	}
}

// PodScheduled is True on every pod the agent runs, as the kubelet reports
// it: on a pod bound by spec.nodeName (past the scheduler) too, and at the
// spec's generation, with the scheduler's transition time kept.
func TestSyncPodScheduled(t *testing.T) {
	scheduledAt := metav1.NewTime(time.Unix(1_600_000_000, 0))
	for _, tc := range []struct {
		name    string
		old     []corev1.PodCondition
		wantLTT *metav1.Time
	}{
		{"bound by spec.nodeName", nil, nil},
		{"bound by the scheduler", []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: scheduledAt}}, &scheduledAt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := syncTestPod(corev1.RestartPolicyAlways)
			pod.Generation = 3
			pod.Status.Conditions = tc.old
			h := newSyncHarness(t, pod)
			h.mustSync(1)
			got := conditionOf(h.pod(), corev1.PodScheduled)
			if got.Status != corev1.ConditionTrue || got.ObservedGeneration != 3 {
				t.Errorf("PodScheduled %+v, want True at generation 3", got)
			}
			if tc.wantLTT != nil && !got.LastTransitionTime.Equal(tc.wantLTT) {
				t.Errorf("transition time %v, want the scheduler's %v", got.LastTransitionTime, tc.wantLTT)
			}
		})
	}
}

// A container killed by its failing liveness or startup probe gets the
// probe's terminationGracePeriodSeconds when set, else the pod's.
func TestProbeKillGrace(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To[int64](600)}}
	withGrace := &corev1.Probe{TerminationGracePeriodSeconds: ptr.To[int64](10)}
	for _, tc := range []struct {
		name string
		c    corev1.Container
		kill string
		want time.Duration
	}{
		{"liveness probe's own", corev1.Container{Name: "c", LivenessProbe: withGrace}, "Container c failed liveness probe, will be restarted", 10 * time.Second},
		{"startup probe's own", corev1.Container{Name: "c", StartupProbe: withGrace}, "Container c failed startup probe, will be restarted", 10 * time.Second},
		{"probe without one: the pod's", corev1.Container{Name: "c", LivenessProbe: &corev1.Probe{}}, "Container c failed liveness probe, will be restarted", 600 * time.Second},
		{"another probe's does not apply", corev1.Container{Name: "c", StartupProbe: withGrace, LivenessProbe: &corev1.Probe{}}, "Container c failed liveness probe, will be restarted", 600 * time.Second},
		{"at least the minimum", corev1.Container{Name: "c", LivenessProbe: &corev1.Probe{TerminationGracePeriodSeconds: ptr.To[int64](0)}}, "Container c failed liveness probe, will be restarted", minimumGracePeriod},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := probeKillGrace(pod, &tc.c, tc.kill); got != tc.want {
				t.Errorf("grace %s, want %s", got, tc.want)
			}
		})
	}
}

// A pod deleted gracefully ends with a status saying how each container
// ended and a terminal phase, written before the pod object goes (the
// upstream "Pod Container Status" specs watch for this).
func TestSyncGracefulDeletionFinalStatus(t *testing.T) {
	h := newSyncHarness(t, syncTestPod(corev1.RestartPolicyAlways, "init1"))
	h.mustSync(1)
	h.exit("init1", 0)
	h.mustSync(1)
	writes := h.recordStatusWrites()
	h.deleteGracefully()
	h.mustSync(1)
	if _, err := h.cs.CoreV1().Pods("ns").Get(context.Background(), "p", metav1.GetOptions{}); err == nil {
		t.Fatal("the pod object is still there after its containers stopped")
	}
	if len(writes()) == 0 {
		t.Fatal("no final status written before the deletion")
	}
	last := writes()[len(writes())-1]
	if last.Status.Phase != corev1.PodSucceeded && last.Status.Phase != corev1.PodFailed {
		t.Errorf("final phase %s, want a terminal one", last.Status.Phase)
	}
	if s := statusOf(last.Status.ContainerStatuses, "app"); s.State.Terminated == nil {
		t.Errorf("app's final state %+v, want terminated", s.State)
	}
}

// A sync of a terminating pod that the cache still holds after the agent
// deleted it: under the Node authorizer the API answers Forbidden, not
// NotFound, for a pod no longer bound to the node. That is the pod being
// gone, not an error to retry with back-off.
func TestSyncTerminatingPodGoneForbidden(t *testing.T) {
	h := newSyncHarness(t, syncTestPod(corev1.RestartPolicyAlways))
	h.mustSync(1)
	h.deleteGracefully()
	h.refresh()
	stale, ok, _ := h.m.inf.GetIndexer().GetByKey(h.key)
	if !ok {
		t.Fatal("the terminating pod is not in the cache")
	}
	if err := h.m.sync(context.Background(), h.key); err != nil {
		t.Fatal(err)
	}
	h.cs.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "p", errors.New("no relationship found between node 'n1' and this object"))
	})
	_ = h.m.inf.GetIndexer().Add(stale) // the watch has not delivered the deletion yet
	if err := h.m.sync(context.Background(), h.key); err != nil {
		t.Errorf("second sync of the deleted pod: %v, want none", err)
	}
}

// While a terminating pod's containers stop, its status is kept current
// (here: one container has stopped, the other still winds down), as the
// kubelet's status manager writes it independently of the pod worker.
func TestSyncStatusWhileTerminating(t *testing.T) {
	pod := syncTestPod(corev1.RestartPolicyAlways)
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "side", Image: "img", ImagePullPolicy: corev1.PullIfNotPresent})
	h := newSyncHarness(t, pod)
	h.mustSync(1)
	release := make(chan struct{})
	h.holdStop = map[string]chan struct{}{"app": release}
	writes := h.recordStatusWrites()
	h.deleteGracefully()
	done := make(chan error, 1)
	go func() { done <- h.sync() }()
	midway := func() bool {
		for _, w := range writes() {
			app, side := statusOf(w.Status.ContainerStatuses, "app"), statusOf(w.Status.ContainerStatuses, "side")
			if app.State.Running != nil && side.State.Terminated != nil {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for !midway() && time.Now().Before(deadline) {
		// A probe result arriving while the pod terminates.
		h.m.probeChanged("uid-p")
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !midway() {
		t.Error("no status written while the pod terminated: want one with side stopped and app still running")
	}
}

// A terminal phase, once written, is never taken back, even when the
// informer's copy lags behind the write and the runtime still reports the
// container (containerd marks a stopped container exited a moment later).
func TestSyncTerminalPhaseIsFinal(t *testing.T) {
	h := newSyncHarness(t, syncTestPod(corev1.RestartPolicyNever))
	stale := h.pod() // before any status
	h.mustSync(1)
	h.exit("app", 0)
	h.mustSync(1)
	if p := h.pod(); p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s, want Succeeded", p.Status.Phase)
	}
	// The cache behind: the current version, yet an earlier status (as a
	// status computed before the write would see it).
	stale.ResourceVersion = h.pod().ResourceVersion
	if err := h.m.inf.GetIndexer().Update(stale); err != nil {
		t.Fatal(err)
	}
	h.rt.Lock()
	for _, c := range h.rt.Containers {
		c.State = runtimeapi.ContainerState_CONTAINER_RUNNING // the runtime behind
	}
	h.rt.Unlock()
	if err := h.m.sync(context.Background(), h.key); err != nil {
		t.Fatal(err)
	}
	if p := h.pod(); p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s after a stale sync: a terminal phase was taken back", p.Status.Phase)
	}
}
