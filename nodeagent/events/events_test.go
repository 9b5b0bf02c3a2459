package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient/kubeclienttest"
)

type harness struct {
	b     *Broadcaster
	cs    *fake.Clientset
	clock time.Time
	rec   Recorder
}

func newHarness() *harness {
	h := &harness{cs: fake.NewClientset(), clock: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	h.b = NewBroadcaster(kubeclienttest.FromClientset(h.cs).CoreV1())
	h.b.now = func() time.Time { return h.clock }
	h.b.retry = time.Millisecond
	h.rec = h.b.NewRecorder(corev1.EventSource{Component: "kubelet", Host: "n1"})
	return h
}

// record records one event and sends what the recorder queued, a
// millisecond after the one before (event names hold their time).
func (h *harness) record(obj runtime.Object, eventtype, reason, msg string) {
	h.clock = h.clock.Add(time.Millisecond)
	h.rec.Eventf(obj, eventtype, reason, "%s", msg)
	for {
		select {
		case e := <-h.b.queue:
			h.b.send(context.Background(), e)
		default:
			return
		}
	}
}

func (h *harness) events(t *testing.T, ns string) []corev1.Event {
	t.Helper()
	list, err := h.cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

var pod = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u1", ResourceVersion: "7"}}

// An event as the kubelet writes it: the pod's reference, source and
// reporting fields, count 1, both timestamps.
func TestEventFields(t *testing.T) {
	h := newHarness()
	h.record(pod, corev1.EventTypeNormal, "Started", "Started container c")
	got := h.events(t, "ns")
	if len(got) != 1 {
		t.Fatalf("%d events, want 1", len(got))
	}
	e := got[0]
	want := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web", Namespace: "ns", UID: "u1", ResourceVersion: "7"}
	if e.InvolvedObject != want || e.Source.Component != "kubelet" || e.Source.Host != "n1" || e.ReportingController != "kubelet" ||
		e.ReportingInstance != "n1" || e.Count != 1 || !e.FirstTimestamp.Equal(&e.LastTimestamp) || e.FirstTimestamp.IsZero() ||
		!strings.HasPrefix(e.Name, "web.") || e.Message != "Started container c" || e.Type != corev1.EventTypeNormal {
		t.Errorf("event = %+v", e)
	}
}

func TestCorrelation(t *testing.T) {
	node := &corev1.ObjectReference{Kind: "Node", Name: "n1", UID: "n1"}
	for _, tc := range []struct {
		name string
		run  func(h *harness)
		ns   string
		// want: message -> count
		want map[string]int32
	}{
		{"a repeat counts on the first event", func(h *harness) {
			for range 3 {
				h.record(pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container c")
				h.clock = h.clock.Add(time.Second)
			}
		}, "ns", map[string]int32{"Back-off restarting failed container c": 3}},
		{"different reasons are different events", func(h *harness) {
			h.record(pod, corev1.EventTypeNormal, "Pulled", "x")
			h.record(pod, corev1.EventTypeNormal, "Created", "x")
		}, "ns", map[string]int32{"x": 2}}, // two events with message x, one each: checked below by count sum
		{"ten variants of a reason fold into one combined event", func(h *harness) {
			for i := range 14 {
				h.record(pod, corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("Liveness probe failed: %d", i))
			}
		}, "ns", func() map[string]int32 {
			m := map[string]int32{}
			for i := range 9 {
				m[fmt.Sprintf("Liveness probe failed: %d", i)] = 1
			}
			m[combinedPrefix+"Liveness probe failed: 13"] = 5
			return m
		}()},
		{"variants start over after the window", func(h *harness) {
			for i := range 9 {
				h.record(pod, corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("m%d", i))
			}
			h.clock = h.clock.Add(aggregateWindow + time.Second)
			h.record(pod, corev1.EventTypeWarning, "Unhealthy", "m9")
		}, "ns", map[string]int32{"m0": 1, "m1": 1, "m2": 1, "m3": 1, "m4": 1, "m5": 1, "m6": 1, "m7": 1, "m8": 1, "m9": 1}},
		{"a burst of 25 per object, then one per five minutes", func(h *harness) {
			for i := range 30 {
				h.record(pod, corev1.EventTypeNormal, fmt.Sprintf("R%d", i), "m")
			}
			h.clock = h.clock.Add(spamRefill)
			h.record(pod, corev1.EventTypeNormal, "R30", "m")
			h.record(pod, corev1.EventTypeNormal, "R31", "m")
		}, "ns", map[string]int32{"m": 26}},
		{"a cluster-scoped object's events go to default", func(h *harness) {
			h.record(node, corev1.EventTypeWarning, "FailedMirrorPod", "m")
		}, "default", map[string]int32{"m": 1}},
		{"an unknown type is dropped", func(h *harness) {
			h.record(pod, "Error", "Failed", "m")
		}, "ns", map[string]int32{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness()
			tc.run(h)
			got := map[string]int32{}
			for _, e := range h.events(t, tc.ns) {
				got[e.Message] += e.Count
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("message -> count = %v, want %v", got, tc.want)
			}
		})
	}
}

// An event that expired between two repeats is written anew; a refused
// write is not retried, a failed connection is.
func TestWriteFailures(t *testing.T) {
	h := newHarness()
	h.record(pod, corev1.EventTypeWarning, "BackOff", "m")
	e := h.events(t, "ns")[0]
	if err := h.cs.CoreV1().Events("ns").Delete(context.Background(), e.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.record(pod, corev1.EventTypeWarning, "BackOff", "m")
	if got := h.events(t, "ns"); len(got) != 1 || got[0].Count != 2 {
		t.Errorf("after expiry: %+v, want one event with count 2", got)
	}

	creates := 0
	h.cs.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		creates++
		if creates < 3 {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	h.record(pod, corev1.EventTypeNormal, "Killing", "m")
	if creates != 3 || len(h.events(t, "ns")) != 2 {
		t.Errorf("%d create attempts, events %d; want 3 attempts and the event written", creates, len(h.events(t, "ns")))
	}
}
