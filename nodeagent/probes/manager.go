// Package probes runs the startup, liveness and readiness probes of running
// containers as the kubelet does: one goroutine per configured probe, results
// filtered through the success and failure thresholds, stock events, and a
// callback whenever a result the pod status depends on changes.
//
// State is kept per container ID, so a restarted container starts over:
// not started (if it has a startup probe), not ready (if it has a readiness
// probe) and not condemned.
package probes

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kubeparts/kubeparts/nodeagent/events"
)

// Execer runs a command in a container and waits for it. The CRI
// RuntimeService (k8s.io/cri-api/pkg/apis) satisfies it.
type Execer interface {
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, err error)
}

// Container is a running container to probe. ID is the ID given back to
// State; a "runtime://" prefix is stripped before ExecSync.
type Container struct {
	ID        string
	StartedAt time.Time
}

// Manager runs the probes of the containers it is given by Sync.
type Manager struct {
	exec     Execer
	recorder events.Recorder
	onChange func(types.UID)
	clock    clock.WithTicker
	http     *httpProber
	// execGrace is how long past the probe's timeout an ExecSync may run
	// before the probe gives up on it: the runtime enforces the timeout
	// itself, this only guards against one that does not.
	execGrace time.Duration
	// start runs a new worker; tests replace it to drive workers by hand.
	start func(w *worker)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	pods map[types.UID]*podState
}

// podState is what the manager knows of one pod.
type podState struct {
	pod        *corev1.Pod
	podIP      string
	containers map[string]*containerState // by container name
}

// containerState holds the probe results of one container instance.
type containerState struct {
	name, id  string
	spec      *corev1.Container
	startedAt time.Time
	cancel    context.CancelFunc
	workers   map[probeKind]*worker

	started bool   // startup probe passed, or none
	ready   bool   // readiness probe passed per its thresholds
	kill    string // why the container must be restarted
}

// NewManager returns a manager whose exec probes run through exec. recorder
// (nil: none) receives the Unhealthy and ProbeWarning events; onChange (may
// be nil) is called with the pod's UID, from a probe goroutine, when a
// container becomes started, ready or unready, or must be restarted.
func NewManager(exec Execer, recorder events.Recorder, onChange func(types.UID)) *Manager {
	return newManager(exec, recorder, onChange, clock.RealClock{})
}

func newManager(exec Execer, recorder events.Recorder, onChange func(types.UID), clk clock.WithTicker) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		exec: exec, recorder: recorder, onChange: onChange, clock: clk,
		http:      newHTTPProber(),
		execGrace: 5 * time.Second,
		ctx:       ctx, cancel: cancel,
		pods: map[types.UID]*podState{},
	}
	m.start = func(w *worker) {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			w.run()
		}()
	}
	return m
}

// Sync makes the manager probe exactly the given running containers of pod
// (app containers and restartable init containers, by name): new container
// IDs get fresh workers and state, containers gone or replaced lose theirs.
// podIP is the default host of httpGet, tcpSocket and grpc probes. It never
// waits for a probe. Changes Sync makes itself (on pod deletion) are not
// reported through onChange: the caller reads State next anyway.
func (m *Manager) Sync(pod *corev1.Pod, podIP string, running map[string]Container) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return
	}
	ps := m.pods[pod.UID]
	if ps == nil {
		ps = &podState{containers: map[string]*containerState{}}
		m.pods[pod.UID] = ps
	}
	ps.pod, ps.podIP = pod, podIP

	want := map[string]*corev1.Container{}
	for _, c := range probedContainers(pod) {
		if _, ok := running[c.Name]; ok && hasProbes(c) {
			want[c.Name] = c
		}
	}
	for name, cs := range ps.containers {
		if want[name] == nil || running[name].ID != cs.id {
			cs.cancel()
			delete(ps.containers, name)
		}
	}
	var fresh []*worker
	for name, spec := range want {
		if ps.containers[name] != nil {
			continue
		}
		rc := running[name]
		ctx, cancel := context.WithCancel(m.ctx)
		cs := &containerState{name: name, id: rc.ID, spec: spec, startedAt: rc.StartedAt, cancel: cancel,
			workers: map[probeKind]*worker{}, started: spec.StartupProbe == nil}
		if cs.startedAt.IsZero() {
			cs.startedAt = m.clock.Now()
		}
		for _, kind := range []probeKind{startup, readiness, liveness} {
			if p := kind.spec(spec); p != nil {
				w := newWorker(ctx, m, pod.UID, cs, kind, p)
				cs.workers[kind] = w
				fresh = append(fresh, w)
			}
		}
		ps.containers[name] = cs
	}
	if pod.DeletionTimestamp != nil {
		// As stock: a terminating pod is not restarted for failing probes,
		// and a container still starting counts as started.
		for _, cs := range ps.containers {
			for _, kind := range []probeKind{startup, liveness} {
				if w := cs.workers[kind]; w != nil {
					w.cancel()
					delete(cs.workers, kind)
				}
			}
			cs.started, cs.kill = true, ""
			if w := cs.workers[readiness]; w != nil {
				w.trigger()
			}
		}
	}
	for _, w := range fresh {
		if w.ctx.Err() == nil {
			m.start(w)
		}
	}
}

// RemovePod stops the probes of a pod and forgets it.
func (m *Manager) RemovePod(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ps := m.pods[uid]; ps != nil {
		for _, cs := range ps.containers {
			cs.cancel()
		}
		delete(m.pods, uid)
	}
}

// State is what the probes say of a container: started once its startup
// probe passed (or it has none), ready once started and its readiness probe
// passed (or it has none), and kill, when non-empty, the reason it must be
// restarted ("Container app failed liveness probe, will be restarted").
// A container instance Sync has not registered yet gets its initial state
// from the pod's spec; a pod never synced (or removed) has no probes.
// containerID is compared with the Container.ID given to Sync.
func (m *Manager) State(uid types.UID, container, containerID string) (started, ready bool, kill string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.pods[uid]
	if ps == nil {
		return true, true, ""
	}
	if cs := ps.containers[container]; cs != nil && cs.id == containerID {
		return cs.started, cs.started && (cs.spec.ReadinessProbe == nil || cs.ready), cs.kill
	}
	for _, c := range probedContainers(ps.pod) {
		if c.Name == container {
			started = c.StartupProbe == nil || ps.pod.DeletionTimestamp != nil
			return started, started && c.ReadinessProbe == nil, ""
		}
	}
	return true, true, ""
}

// Stop stops every probe and waits for the workers to return.
func (m *Manager) Stop() {
	m.mu.Lock()
	m.cancel()
	m.pods = map[types.UID]*podState{}
	m.mu.Unlock()
	m.wg.Wait()
}

// probedContainers are the containers the kubelet probes: app containers
// and sidecars (init containers that restart always).
func probedContainers(pod *corev1.Pod) []*corev1.Container {
	var out []*corev1.Container
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			out = append(out, c)
		}
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

func hasProbes(c *corev1.Container) bool {
	return c.StartupProbe != nil || c.ReadinessProbe != nil || c.LivenessProbe != nil
}

// setResult records a worker's verdict (after thresholds) and tells the pod
// worker when it changed something the status shows or acts on. Results of
// a worker that was stopped meanwhile are dropped.
func (m *Manager) setResult(w *worker, success bool) {
	m.mu.Lock()
	cs := w.cs
	if w.ctx.Err() != nil {
		m.mu.Unlock()
		return
	}
	changed := false
	switch w.kind {
	case readiness:
		changed = cs.ready != success
		cs.ready = success
	case startup:
		if success && !cs.started {
			cs.started, changed = true, true
			// Liveness and readiness waited for this: run them now rather
			// than a period later.
			for _, sib := range cs.workers {
				if sib != w {
					sib.trigger()
				}
			}
		}
	}
	if !success && w.kind != readiness && cs.kill == "" {
		cs.kill = fmt.Sprintf("Container %s failed %s probe, will be restarted", cs.name, w.kind.lower())
		changed = true
	}
	m.mu.Unlock()
	if changed {
		klog.V(3).InfoS("Probe result changed", "podUID", w.pod, "container", cs.name, "probe", w.kind.lower(), "success", success)
		if m.onChange != nil {
			m.onChange(w.pod)
		}
	}
}

// snapshot is what a probe needs from the manager's shared state.
func (m *Manager) snapshot(w *worker) (pod *corev1.Pod, podIP string, started bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ps := m.pods[w.pod]; ps != nil {
		pod, podIP = ps.pod, ps.podIP
	}
	return pod, podIP, w.cs.started
}
