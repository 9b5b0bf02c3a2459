package swap

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// APIHealth reads the mirror pods and Leases from the cluster's API.
type APIHealth struct {
	Client kubernetes.Interface
	// Node is this host's Node name: mirror pods are named <pod>-<node>.
	Node string
}

func splitLease(lease string) (string, string) {
	ns, name, _ := strings.Cut(lease, "/")
	return ns, name
}

// Leader returns the Lease's holder, "" when the Lease does not exist yet.
func (a APIHealth) Leader(ctx context.Context, lease string) (string, error) {
	ns, name := splitLease(lease)
	l, err := a.Client.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *l.Spec.HolderIdentity, nil
}

// WaitInCharge polls every second until the pod is Ready and the Lease held afresh.
func (a APIHealth) WaitInCharge(ctx context.Context, pod, lease, previous string) error {
	// What was last seen missing says more than a read that failed (the last
	// one may only fail for the deadline itself).
	var missing string
	var apiErr error
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		name := pod + "-" + a.Node
		p, err := a.Client.CoreV1().Pods("kube-system").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			apiErr = fmt.Errorf("mirror pod kube-system/%s: %w", name, err)
			return false, nil
		}
		if !podReady(p) {
			missing = fmt.Sprintf("pod kube-system/%s is not Ready (%s)", name, podSummary(p))
			return false, nil
		}
		if lease == "" {
			return true, nil
		}
		ns, ln := splitLease(lease)
		l, err := a.Client.CoordinationV1().Leases(ns).Get(ctx, ln, metav1.GetOptions{})
		if err != nil {
			apiErr = fmt.Errorf("reading Lease %s: %w", lease, err)
			return false, nil
		}
		holder := ""
		if l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		fresh := l.Spec.RenewTime != nil && l.Spec.LeaseDurationSeconds != nil &&
			time.Since(l.Spec.RenewTime.Time) < time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second
		if holder == "" || holder == previous || !fresh {
			missing = fmt.Sprintf("Lease %s still held by %q (renewed %v)", lease, holder, l.Spec.RenewTime)
			return false, nil
		}
		return true, nil
	})
	switch {
	case err == nil:
		return nil
	case missing != "":
		return fmt.Errorf("%s", missing)
	case apiErr != nil:
		return apiErr
	}
	return err
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podSummary says what a pod's containers are doing, as kubectl's STATUS would.
func podSummary(p *corev1.Pod) string {
	var parts []string
	for _, c := range p.Status.ContainerStatuses {
		switch {
		case c.State.Waiting != nil:
			parts = append(parts, c.Name+": "+c.State.Waiting.Reason)
		case c.State.Terminated != nil:
			parts = append(parts, fmt.Sprintf("%s: exited %d", c.Name, c.State.Terminated.ExitCode))
		default:
			parts = append(parts, fmt.Sprintf("%s: running, restarts %d", c.Name, c.RestartCount))
		}
	}
	if len(parts) == 0 {
		return string(p.Status.Phase)
	}
	return strings.Join(parts, "; ")
}
