package probes

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// probeKind is which of a container's three probes a worker runs.
type probeKind int

const (
	startup probeKind = iota
	readiness
	liveness
)

// String is the capitalised name event messages start with.
func (k probeKind) String() string {
	switch k {
	case startup:
		return "Startup"
	case readiness:
		return "Readiness"
	default:
		return "Liveness"
	}
}

func (k probeKind) lower() string {
	switch k {
	case startup:
		return "startup"
	case readiness:
		return "readiness"
	default:
		return "liveness"
	}
}

func (k probeKind) spec(c *corev1.Container) *corev1.Probe {
	switch k {
	case startup:
		return c.StartupProbe
	case readiness:
		return c.ReadinessProbe
	default:
		return c.LivenessProbe
	}
}

// Event reasons, as the kubelet's.
const (
	reasonUnhealthy    = "Unhealthy"
	reasonProbeWarning = "ProbeWarning"
)

// maxRetries is how often a probe that could not be carried out (as
// opposed to one that failed) is attempted before giving up for the period:
// transient runtime errors should not cost a whole period.
const maxRetries = 3

// worker runs one probe of one container instance. Its threshold counters
// are touched by its own goroutine only.
type worker struct {
	m         *Manager
	pod       types.UID
	cs        *containerState
	kind      probeKind
	spec      corev1.Probe
	ctx       context.Context
	cancel    context.CancelFunc
	triggerCh chan struct{}

	last   bool // the last probe's result
	streak int  // how many probes in a row gave last
}

func newWorker(parent context.Context, m *Manager, uid types.UID, cs *containerState, kind probeKind, p *corev1.Probe) *worker {
	spec := *p
	// The API server defaults these; objects built elsewhere may not be.
	if spec.PeriodSeconds <= 0 {
		spec.PeriodSeconds = 10
	}
	if spec.TimeoutSeconds <= 0 {
		spec.TimeoutSeconds = 1
	}
	if spec.SuccessThreshold <= 0 || kind != readiness {
		spec.SuccessThreshold = 1
	}
	if spec.FailureThreshold <= 0 {
		spec.FailureThreshold = 3
	}
	ctx, cancel := context.WithCancel(parent)
	return &worker{m: m, pod: uid, cs: cs, kind: kind, spec: spec, ctx: ctx, cancel: cancel, triggerCh: make(chan struct{}, 1)}
}

// trigger asks for a probe now; it never blocks, and requests made while
// one is pending merge.
func (w *worker) trigger() {
	select {
	case w.triggerCh <- struct{}{}:
	default:
	}
}

// run probes once the initial delay has passed since the container started,
// then every period, until probeOnce says the worker is done or it is
// stopped.
func (w *worker) run() {
	defer w.cancel()
	clk := w.m.clock
	if d := w.cs.startedAt.Add(time.Duration(w.spec.InitialDelaySeconds) * time.Second).Sub(clk.Now()); d > 0 {
		t := clk.NewTimer(d)
		select {
		case <-w.ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
	// The ticker exists before the first probe, so that once a result shows
	// the next period is already being counted.
	ticker := clk.NewTicker(time.Duration(w.spec.PeriodSeconds) * time.Second)
	defer ticker.Stop()
	select {
	case <-w.triggerCh: // about to probe anyway
	default:
	}
	for w.probeOnce() {
		select {
		case <-w.ctx.Done():
			return
		case <-ticker.C():
		case <-w.triggerCh:
		}
	}
}

// probeOnce runs the probe if it is due, applies the thresholds and reports
// whether the worker should go on. A panic is logged and counts as nothing.
func (w *worker) probeOnce() (keepGoing bool) {
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(fmt.Errorf("%v", r), "Probe panicked", "podUID", w.pod, "container", w.cs.name, "probe", w.kind.lower())
			keepGoing = w.ctx.Err() == nil
		}
	}()
	if w.ctx.Err() != nil {
		return false
	}
	pod, podIP, started := w.m.snapshot(w)
	if pod == nil {
		return false
	}
	switch {
	case w.kind == startup && started:
		return false // its job is done
	case w.kind != startup && !started:
		return true // liveness and readiness wait for the startup probe
	}

	var (
		res outcome
		msg string
		err error
	)
	for i := 0; i < maxRetries && w.ctx.Err() == nil; i++ {
		if res, msg, err = w.m.runProbe(w.ctx, &w.spec, w.cs.spec, w.cs.id, podIP); err == nil {
			break
		}
	}
	if w.ctx.Err() != nil {
		return false
	}
	if err != nil {
		// As stock, a probe that could not be run counts neither way.
		klog.V(1).InfoS("Probe errored", "pod", klog.KObj(pod), "container", w.cs.name, "probe", w.kind.lower(), "err", err)
		w.event(pod, reasonUnhealthy, "%s probe errored and resulted in unknown state: %s", w.kind, err)
		return true
	}
	switch res {
	case failure:
		klog.V(1).InfoS("Probe failed", "pod", klog.KObj(pod), "container", w.cs.name, "probe", w.kind.lower(), "output", msg)
		w.event(pod, reasonUnhealthy, "%s probe failed: %s", w.kind, msg)
	case warning:
		w.event(pod, reasonProbeWarning, "%s probe warning: %s", w.kind, msg)
	}

	success := res != failure
	if w.streak > 0 && success == w.last {
		w.streak++
	} else {
		w.last, w.streak = success, 1
	}
	threshold := w.spec.FailureThreshold
	if success {
		threshold = w.spec.SuccessThreshold
	}
	if w.streak < int(threshold) {
		return true
	}
	w.m.setResult(w, success)
	// A condemned container keeps its verdict until it is replaced, and a
	// passed startup probe is not run again.
	return w.kind == readiness || (success && w.kind == liveness)
}

// event records a Warning about the container on the pod, as the kubelet
// does (the field path names the container).
func (w *worker) event(pod *corev1.Pod, reason, format string, args ...interface{}) {
	if w.m.recorder == nil {
		return
	}
	field := fmt.Sprintf("spec.containers{%s}", w.cs.name)
	for _, c := range pod.Spec.InitContainers {
		if c.Name == w.cs.name {
			field = fmt.Sprintf("spec.initContainers{%s}", w.cs.name)
		}
	}
	ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, Namespace: pod.Namespace,
		UID: pod.UID, ResourceVersion: pod.ResourceVersion, FieldPath: field}
	w.m.recorder.Eventf(ref, corev1.EventTypeWarning, reason, format, args...)
}
