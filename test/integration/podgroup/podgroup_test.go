// Package podgroup tests the PodGroup CRD (validation, defaults) and kubeparts'
// podgroup-controller against a real kube-apiserver.
package podgroup

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	schedulingv1alpha1 "github.com/kubeparts/kubeparts/api/v1alpha1"
	"github.com/kubeparts/kubeparts/controllers/podgroup"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var (
	env *framework.Env
	c   client.Client
)

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, "podgroup", &env, framework.WithCRDs(), framework.WithManager(func(_ context.Context, mgr ctrl.Manager) error {
		if err := (&podgroup.Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
			return err
		}
		var err error
		c, err = client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
		return err
	})))
}

func group(ns, name string, min int32) *schedulingv1alpha1.PodGroup {
	return &schedulingv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: schedulingv1alpha1.PodGroupSpec{MinMember: min}}
}

// minMember below 1 is rejected by the CRD's validation with a clear message.
func TestValidationAndDefaults(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "pg-")
	if err != nil {
		t.Fatal(err)
	}
	for _, min := range []int32{0, -3} {
		err := c.Create(ctx, group(ns, fmt.Sprintf("bad%d", -min), min))
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.minMember") || !strings.Contains(err.Error(), "should be greater than or equal to 1") {
			t.Errorf("minMember %d: err = %v, want Invalid on spec.minMember", min, err)
		}
	}
	bad := group(ns, "badtimeout", 2)
	bad.Spec.ScheduleTimeoutSeconds = ptr.To[int32](0)
	if err := c.Create(ctx, bad); !apierrors.IsInvalid(err) {
		t.Errorf("scheduleTimeoutSeconds 0: err = %v, want Invalid", err)
	}
	good := group(ns, "good", 2)
	if err := c.Create(ctx, good); err != nil {
		t.Fatal(err)
	}
	if ptr.Deref(good.Spec.ScheduleTimeoutSeconds, 0) != 60 {
		t.Errorf("scheduleTimeoutSeconds defaulted to %v, want 60", good.Spec.ScheduleTimeoutSeconds)
	}
}

func TestStatusFollowsPods(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, group(ns, "gang", 2)); err != nil {
		t.Fatal(err)
	}
	phase := func(want schedulingv1alpha1.PodGroupPhase, scheduled, running int32) func() error {
		return func() error {
			pg := &schedulingv1alpha1.PodGroup{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gang"}, pg); err != nil {
				return err
			}
			if pg.Status.Phase != want || pg.Status.Scheduled != scheduled || pg.Status.Running != running {
				return fmt.Errorf("status %+v", pg.Status)
			}
			return nil
		}
	}
	framework.Eventually(t, 30*time.Second, "Pending", phase(schedulingv1alpha1.PodGroupPending, 0, 0))
	var pods []*corev1.Pod
	for i := range 2 {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("m%d", i), Labels: map[string]string{schedulingv1alpha1.PodGroupLabel: "gang"}},
			Spec: corev1.PodSpec{NodeName: fmt.Sprintf("node-%d", i), Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}}}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	framework.Eventually(t, 30*time.Second, "Scheduled", phase(schedulingv1alpha1.PodGroupScheduled, 2, 0))
	for _, p := range pods {
		p.Status.Phase = corev1.PodRunning
		if err := c.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	framework.Eventually(t, 30*time.Second, "Running", phase(schedulingv1alpha1.PodGroupRunning, 2, 2))
}
