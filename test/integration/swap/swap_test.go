// Package swap tests how `kubeparts swap` tells that a swapped piece is in charge,
// against a real kube-apiserver: the mirror pod Ready and the Lease taken afresh.
package swap

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeparts/kubeparts/internal/swap"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, "swap", &env))
}

func TestWaitInCharge(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	h := swap.APIHealth{Client: c, Node: "n1"}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kubeparts-scheduler-n1", Namespace: "kube-system"},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	pod, err := c.CoreV1().Pods("kube-system").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	holder, duration := "n1_old", int32(15)
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "kube-scheduler", Namespace: "kube-system"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &duration, RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	if lease, err = c.CoordinationV1().Leases("kube-system").Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := h.Leader(ctx, "kube-system/kube-scheduler"); err != nil || got != "n1_old" {
		t.Fatalf("Leader = %q, %v", got, err)
	}
	if got, err := h.Leader(ctx, "kube-system/none"); err != nil || got != "" {
		t.Fatalf("Leader of a missing Lease = %q, %v; want none", got, err)
	}

	wait := func() error {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return h.WaitInCharge(ctx, "kubeparts-scheduler", "kube-system/kube-scheduler", "n1_old")
	}
	// Not Ready: the error says what the containers do.
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}}
	if pod, err = c.CoreV1().Pods("kube-system").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err == nil || !strings.Contains(err.Error(), "CrashLoopBackOff") {
		t.Fatalf("crash-looping pod: %v, want an error naming CrashLoopBackOff", err)
	}
	// Ready, but the Lease is still the old holder's.
	pod.Status.Conditions[0].Status = corev1.ConditionTrue
	pod.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	if _, err = c.CoreV1().Pods("kube-system").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err == nil || !strings.Contains(err.Error(), `still held by "n1_old"`) {
		t.Fatalf("old holder: %v, want an error naming the old holder", err)
	}
	// Taken by the new piece: in charge.
	holder = "n1_new"
	lease.Spec.HolderIdentity, lease.Spec.RenewTime = &holder, &metav1.MicroTime{Time: time.Now()}
	if _, err = c.CoordinationV1().Leases("kube-system").Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("new holder and Ready pod: %v", err)
	}
}
