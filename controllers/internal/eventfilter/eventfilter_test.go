package eventfilter

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
)

func TestBurstPerObjectAndType(t *testing.T) {
	fake := events.NewFakeRecorder(1000)
	r := New(fake)
	a := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "1"}}
	b := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "b", UID: "2"}}
	for range 40 {
		r.Eventf(a, nil, corev1.EventTypeNormal, "SuccessfulCreate", "Create", "x")
	}
	r.Eventf(a, nil, corev1.EventTypeWarning, "FailedCreate", "Create", "x")
	r.Eventf(b, nil, corev1.EventTypeNormal, "SuccessfulCreate", "Create", "x")
	if got := len(fake.Events); got != Burst+2 {
		t.Fatalf("%d events recorded, want %d normal for a, then a's warning and b's event", got, Burst+2)
	}
}
