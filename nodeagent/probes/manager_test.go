package probes

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"
)

const podUID = types.UID("uid-1")

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// scripted is an Execer whose commands (by their first word) exit with the
// code set for them, printing "out-<command>"; code -1 is a runtime error.
type scripted struct {
	fakeExec
	codes sync.Map // command -> int
}

func newScripted() *scripted {
	s := &scripted{}
	s.fn = func(_ context.Context, cmd []string, _ time.Duration) ([]byte, []byte, error) {
		code, _ := s.codes.Load(cmd[0])
		switch c, _ := code.(int); c {
		case 0:
			return []byte("out-" + cmd[0]), nil, nil
		case -1:
			return nil, nil, errors.New("runtime down")
		case -2:
			panic("boom")
		default:
			return []byte("out-" + cmd[0]), nil, exitErr(c)
		}
	}
	return s
}

func execProbe(cmd string, failure, success int32) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{cmd}}},
		FailureThreshold: failure, SuccessThreshold: success, PeriodSeconds: 10, TimeoutSeconds: 1}
}

func testPod(c corev1.Container) *corev1.Pod {
	c.Name = "app"
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: podUID},
		Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
}

// harness is a manager whose workers are driven by hand, one probe at a time.
type harness struct {
	m       *Manager
	exec    *scripted
	rec     *record.FakeRecorder
	mu      sync.Mutex
	changes int
}

func newHarness() *harness {
	h := &harness{exec: newScripted(), rec: record.NewFakeRecorder(100)}
	h.m = newManager(h.exec, h.rec, func(uid types.UID) {
		if uid == podUID {
			h.mu.Lock()
			h.changes++
			h.mu.Unlock()
		}
	}, testingclock.NewFakeClock(t0))
	h.m.start = func(*worker) {} // probeOnce is called by the test
	return h
}

func (h *harness) changeCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changes
}

// worker is the container's current worker of that kind.
func (h *harness) worker(t *testing.T, kind probeKind) *worker {
	t.Helper()
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	ps := h.m.pods[podUID]
	if ps == nil || ps.containers["app"] == nil || ps.containers["app"].workers[kind] == nil {
		t.Fatalf("no %s worker", kind.lower())
	}
	return ps.containers["app"].workers[kind]
}

func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestThresholds(t *testing.T) {
	type step struct {
		kind  probeKind
		code  int  // exit code of the probe's command
		ran   bool // whether the command was run
		keep  bool // whether the worker goes on
		start bool
		ready bool
		kill  string
	}
	const (
		liveKill  = "Container app failed liveness probe, will be restarted"
		startKill = "Container app failed startup probe, will be restarted"
	)
	for _, tc := range []struct {
		name    string
		c       corev1.Container
		steps   []step
		changes int
		events  []string
	}{
		{
			name: "readiness flips after successThreshold successes and failureThreshold failures",
			c:    corev1.Container{ReadinessProbe: execProbe("ready", 2, 2)},
			steps: []step{
				{readiness, 0, true, true, true, false, ""},
				{readiness, 0, true, true, true, true, ""},
				{readiness, 1, true, true, true, true, ""},
				{readiness, 0, true, true, true, true, ""},
				{readiness, 1, true, true, true, true, ""},
				{readiness, 1, true, true, true, false, ""},
				{readiness, 1, true, true, true, false, ""},
				{readiness, 0, true, true, true, false, ""},
				{readiness, 0, true, true, true, true, ""},
			},
			changes: 3,
			events:  slices.Repeat([]string{"Warning Unhealthy Readiness probe failed: out-ready"}, 4),
		},
		{
			name: "liveness kills after failureThreshold failures in a row",
			c:    corev1.Container{LivenessProbe: execProbe("live", 3, 0)},
			steps: []step{
				{liveness, 1, true, true, true, true, ""},
				{liveness, 1, true, true, true, true, ""},
				{liveness, 0, true, true, true, true, ""},
				{liveness, 1, true, true, true, true, ""},
				{liveness, 1, true, true, true, true, ""},
				{liveness, 1, true, false, true, true, liveKill},
			},
			changes: 1,
			events:  slices.Repeat([]string{"Warning Unhealthy Liveness probe failed: out-live"}, 5),
		},
		{
			name: "startup gates liveness and readiness",
			c: corev1.Container{StartupProbe: execProbe("start", 3, 0), ReadinessProbe: execProbe("ready", 1, 1),
				LivenessProbe: execProbe("live", 1, 1)},
			steps: []step{
				{readiness, 0, false, true, false, false, ""},
				{liveness, 1, false, true, false, false, ""},
				{startup, 1, true, true, false, false, ""},
				{startup, 0, true, false, true, false, ""},
				{startup, 0, false, false, true, false, ""},
				{readiness, 0, true, true, true, true, ""},
				{liveness, 1, true, false, true, true, liveKill},
			},
			changes: 3,
			events:  []string{"Warning Unhealthy Startup probe failed: out-start", "Warning Unhealthy Liveness probe failed: out-live"},
		},
		{
			name: "startup kills after failureThreshold failures",
			c:    corev1.Container{StartupProbe: execProbe("start", 2, 0), ReadinessProbe: execProbe("ready", 1, 1)},
			steps: []step{
				{startup, 1, true, true, false, false, ""},
				{startup, 1, true, false, false, false, startKill},
				{readiness, 0, false, true, false, false, startKill},
			},
			changes: 1,
			events:  slices.Repeat([]string{"Warning Unhealthy Startup probe failed: out-start"}, 2),
		},
		{
			name: "probe errors count neither way",
			c:    corev1.Container{LivenessProbe: execProbe("live", 1, 0), ReadinessProbe: execProbe("ready", 1, 1)},
			steps: []step{
				{liveness, -1, true, true, true, false, ""},
				{liveness, -1, true, true, true, false, ""},
				{readiness, -1, true, true, true, false, ""},
				{readiness, 0, true, true, true, true, ""},
				{readiness, -1, true, true, true, true, ""},
			},
			changes: 1,
			events: append(slices.Repeat([]string{"Warning Unhealthy Liveness probe errored and resulted in unknown state: runtime down"}, 2),
				"Warning Unhealthy Readiness probe errored and resulted in unknown state: runtime down",
				"Warning Unhealthy Readiness probe errored and resulted in unknown state: runtime down"),
		},
		{
			name: "a panicking probe is survived",
			c:    corev1.Container{LivenessProbe: execProbe("live", 1, 0)},
			steps: []step{
				{liveness, -2, true, true, true, true, ""},
				{liveness, 0, true, true, true, true, ""},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness()
			defer h.m.Stop()
			h.m.Sync(testPod(tc.c), "10.0.0.1", map[string]Container{"app": {ID: "c1", StartedAt: t0}})
			for i, s := range tc.steps {
				cmd := map[probeKind]string{startup: "start", readiness: "ready", liveness: "live"}[s.kind]
				h.exec.codes.Store(cmd, s.code)
				before := h.exec.count(cmd)
				keep := h.worker(t, s.kind).probeOnce()
				ran := h.exec.count(cmd) > before
				started, ready, kill := h.m.State(podUID, "app", "c1")
				if ran != s.ran || keep != s.keep || started != s.start || ready != s.ready || kill != s.kill {
					t.Fatalf("step %d (%s exit %d): ran=%v keep=%v started=%v ready=%v kill=%q, want ran=%v keep=%v started=%v ready=%v kill=%q",
						i, s.kind.lower(), s.code, ran, keep, started, ready, kill, s.ran, s.keep, s.start, s.ready, s.kill)
				}
			}
			if n := h.changeCount(); n != tc.changes {
				t.Errorf("onChange called %d times, want %d", n, tc.changes)
			}
			if ev := h.events(); !slices.Equal(ev, tc.events) {
				t.Errorf("events:\n%q\nwant:\n%q", ev, tc.events)
			}
		})
	}
}

func TestUnknownNamedPortEvent(t *testing.T) {
	h := newHarness()
	defer h.m.Stop()
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}}}
	h.m.Sync(testPod(corev1.Container{ReadinessProbe: p}), "127.0.0.1", map[string]Container{"app": {ID: "c1", StartedAt: t0}})
	if !h.worker(t, readiness).probeOnce() {
		t.Fatal("worker stopped")
	}
	if _, ready, _ := h.m.State(podUID, "app", "c1"); ready {
		t.Error("ready with an unresolvable port")
	}
	want := []string{`Warning Unhealthy Readiness probe errored and resulted in unknown state: port "http" not found in the ports of container app`}
	if ev := h.events(); !slices.Equal(ev, want) {
		t.Errorf("events %q, want %q", ev, want)
	}
}

func TestContainerLifecycle(t *testing.T) {
	h := newHarness()
	defer h.m.Stop()
	pod := testPod(corev1.Container{LivenessProbe: execProbe("live", 1, 0), ReadinessProbe: execProbe("ready", 1, 1)})
	h.exec.codes.Store("live", 1)
	h.exec.codes.Store("ready", 0)

	check := func(id string, started, ready bool, kill string) {
		t.Helper()
		s, r, k := h.m.State(podUID, "app", id)
		if s != started || r != ready || k != kill {
			t.Errorf("State(%s) = %v %v %q, want %v %v %q", id, s, r, k, started, ready, kill)
		}
	}
	// Before any Sync, nothing is known of the pod: no verdict to hold back.
	check("c1", true, true, "")

	h.m.Sync(pod, "10.0.0.1", map[string]Container{"app": {ID: "c1", StartedAt: t0}})
	check("c1", true, false, "") // readiness starts as failed
	check("c0", true, false, "") // an ID not synced yet gets the initial state
	old := h.worker(t, liveness)
	h.worker(t, readiness).probeOnce()
	old.probeOnce()
	check("c1", true, true, "Container app failed liveness probe, will be restarted")

	// The restarted container starts over, and the old workers stop.
	h.m.Sync(pod, "10.0.0.1", map[string]Container{"app": {ID: "c2", StartedAt: t0.Add(time.Minute)}})
	check("c2", true, false, "")
	if old.ctx.Err() == nil {
		t.Error("worker of the replaced container still running")
	}
	if h.worker(t, liveness) == old {
		t.Error("no fresh worker for the new container")
	}

	// A terminating pod is not restarted for failing liveness probes.
	h.worker(t, liveness).probeOnce()
	check("c2", true, false, "Container app failed liveness probe, will be restarted")
	live := h.worker(t, liveness)
	deleting := pod.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	h.m.Sync(deleting, "10.0.0.1", map[string]Container{"app": {ID: "c2", StartedAt: t0.Add(time.Minute)}})
	check("c2", true, false, "")
	if live.ctx.Err() == nil {
		t.Error("liveness still probed during termination")
	}
	ready := h.worker(t, readiness)

	// A container that stopped loses its workers.
	h.m.Sync(deleting, "10.0.0.1", nil)
	if ready.ctx.Err() == nil {
		t.Error("worker of a stopped container still running")
	}

	h.m.Sync(pod, "10.0.0.1", map[string]Container{"app": {ID: "c3", StartedAt: t0}})
	w := h.worker(t, readiness)
	h.m.RemovePod(podUID)
	if w.ctx.Err() == nil {
		t.Error("worker of a removed pod still running")
	}
	check("c3", true, true, "")
	if w.probeOnce() {
		t.Error("worker of a removed pod goes on")
	}
}

func TestStateWithoutProbeResults(t *testing.T) {
	h := newHarness()
	defer h.m.Stop()
	pod := testPod(corev1.Container{StartupProbe: execProbe("start", 1, 1)})
	always := corev1.ContainerRestartPolicyAlways
	pod.Spec.InitContainers = []corev1.Container{{Name: "side", RestartPolicy: &always, ReadinessProbe: execProbe("ready", 1, 1)}}
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "plain"})
	h.m.Sync(pod, "10.0.0.1", map[string]Container{"app": {ID: "a"}, "side": {ID: "s"}, "plain": {ID: "p"}})
	for _, tc := range []struct {
		name, id       string
		started, ready bool
	}{
		{"app", "a", false, false},
		{"side", "s", true, false},
		{"plain", "p", true, true},
	} {
		if s, r, _ := h.m.State(podUID, tc.name, tc.id); s != tc.started || r != tc.ready {
			t.Errorf("State(%s) = %v %v, want %v %v", tc.name, s, r, tc.started, tc.ready)
		}
	}
	h.exec.codes.Store("ready", 1)
	h.m.mu.Lock()
	side := h.m.pods[podUID].containers["side"].workers[readiness]
	h.m.mu.Unlock()
	side.probeOnce()
	want := []string{"Warning Unhealthy Readiness probe failed: out-ready"}
	if ev := h.events(); !slices.Equal(ev, want) {
		t.Errorf("events %q, want %q", ev, want)
	}
}

// The tests below run real worker goroutines on a fake clock.

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestWorkerSchedule(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	exec := newScripted()
	changes := make(chan types.UID, 10)
	m := newManager(exec, nil, func(uid types.UID) { changes <- uid }, clk)
	defer m.Stop()
	p := execProbe("ready", 1, 1)
	p.InitialDelaySeconds = 5
	pod := testPod(corev1.Container{ReadinessProbe: p})
	m.Sync(pod, "10.0.0.1", map[string]Container{"app": {ID: "c1", StartedAt: t0.Add(-2 * time.Second)}})
	ready := func() bool { _, r, _ := m.State(podUID, "app", "c1"); return r }

	waitFor(t, "the initial delay timer", clk.HasWaiters)
	clk.Step(2 * time.Second) // 4s after the start
	if exec.count("ready") != 0 {
		t.Fatal("probed during the initial delay")
	}
	clk.Step(time.Second) // the initial delay is over: probe at once
	waitFor(t, "the first probe", ready)
	if got := <-changes; got != podUID {
		t.Errorf("onChange(%s)", got)
	}

	exec.codes.Store("ready", 1)
	clk.Step(9 * time.Second)
	if exec.count("ready") != 1 {
		t.Fatal("probed again before a period passed")
	}
	clk.Step(time.Second)
	waitFor(t, "the second probe", func() bool { return !ready() })
	<-changes
	if n := exec.count("ready"); n != 2 {
		t.Errorf("%d probes, want 2", n)
	}
}

func TestStartupSuccessTriggersReadiness(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	exec := newScripted()
	m := newManager(exec, nil, nil, clk)
	defer m.Stop()
	startup := execProbe("start", 3, 1)
	startup.PeriodSeconds = 1
	pod := testPod(corev1.Container{StartupProbe: startup, ReadinessProbe: execProbe("ready", 1, 1)})
	m.Sync(pod, "10.0.0.1", map[string]Container{"app": {ID: "c1", StartedAt: t0}})
	// The clock does not move: readiness must run because startup passed,
	// not because its period came round.
	waitFor(t, "readiness after startup", func() bool {
		s, r, _ := m.State(podUID, "app", "c1")
		return s && r
	})
}

func TestSlowProbeBlocksNothing(t *testing.T) {
	entered := make(chan struct{}, 1)
	exec := &fakeExec{fn: func(ctx context.Context, _ []string, _ time.Duration) ([]byte, []byte, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return nil, nil, ctx.Err()
	}}
	m := newManager(exec, nil, nil, testingclock.NewFakeClock(t0))
	pod := testPod(corev1.Container{LivenessProbe: execProbe("live", 1, 0)})
	m.Sync(pod, "10.0.0.1", map[string]Container{"app": {ID: "c1", StartedAt: t0}})
	<-entered

	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Sync(pod, "10.0.0.1", map[string]Container{"app": {ID: "c1", StartedAt: t0}})
		m.State(podUID, "app", "c1")
		m.RemovePod(podUID)
		m.Stop() // returns once the probe gave up
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a probe in flight blocked the manager")
	}
	if _, _, kill := m.State(podUID, "app", "c1"); kill != "" {
		t.Errorf("kill %q from a cancelled probe", kill)
	}
}
