// Package controllermanager runs the real kubeparts-controller-manager binary against a
// real kube-apiserver: start-up errors, leader election, a kill -9 in the middle of a
// large rollout, and each controller's own client (identity, user agent, rate budget).
package controllermanager

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	os.Exit(framework.MainWith(m, "controllermanager", &env, []framework.StartOption{framework.WithAuditLog()}))
}

func binary(t *testing.T) string { return framework.Binary(t, "kubeparts-controller-manager") }

type manager struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func startManager(t *testing.T, kc string, args ...string) *manager {
	t.Helper()
	logPath := filepath.Join(env.LogDir, fmt.Sprintf("kubeparts-controller-manager-%d.log", time.Now().UnixNano()))
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--kubeconfig", kc, "--secure-port=0", "--health-probe-bind-address=0",
		"--leader-elect-lease-duration=3s", "--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=500ms"}
	cmd := exec.Command(binary(t), append(base, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &manager{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); log.Close(); close(m.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-m.done
	})
	return m
}

// Mistakes in flags stop the binary at once with one clear line, never a crash loop.
func TestStartupErrors(t *testing.T) {
	kc := env.WriteKubeconfig(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--controllers=bogus"}, `unknown controller "bogus"`},
		{[]string{"--controllers=*,-nodelifecycle-controller-typo"}, "unknown controller"},
		{[]string{"--controllers=statefulset-controller"}, "not implemented by kubeparts-controller-manager yet"},
		{[]string{"--controllers=-deployment,-replicaset,-daemonset,-namespace,-nodelifecycle,-taint-eviction-controller"}, "enables no controller"},
		{[]string{"--node-monitor-grace-period=1s", "--node-monitor-period=5s"}, "must not be shorter"},
		{[]string{"--kube-api-qps=0"}, "must be positive"},
		{[]string{"--concurrent-deployment-syncs=0"}, "must be positive"},
		{[]string{"--kubeconfig=/nonexistent"}, "kubeconfig"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, binary(t), append([]string{"--kubeconfig", kc}, tc.args...)...).CombinedOutput()
		timedOut := ctx.Err() == context.DeadlineExceeded
		cancel()
		if timedOut {
			t.Errorf("%v: still running after 20s", tc.args)
			continue
		}
		if err == nil || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "panic") {
			t.Errorf("%v: err %v, output %q; want a failure saying %q", tc.args, err, out, tc.want)
		}
	}
}

// TestKillDuringLargeRollout: kill -9 kubeparts-controller-manager in the middle of a
// 200-replica rollout, start it again: the rollout finishes with exactly 200 pods, all
// of the new template, and no ReplicaSet ever owns more pods than it asks for.
func TestKillDuringLargeRollout(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "kill-")
	if err != nil {
		t.Fatal(err)
	}
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	framework.FakeKubelet(kctx, env.Client, ns, nil)
	kc := env.WriteKubeconfig(t)
	m := startManager(t, kc)

	const replicas = 200
	labels := map[string]string{"app": "big"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "big"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10", Env: []corev1.EnvVar{{Name: "V", Value: "1"}}}}},
			},
		},
	}
	if _, err = env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done := func(version string) func() error {
		return func() error {
			cur, err := env.Client.AppsV1().Deployments(ns).Get(ctx, "big", metav1.GetOptions{})
			if err != nil {
				return err
			}
			st := cur.Status
			if st.ObservedGeneration < cur.Generation || st.UpdatedReplicas != replicas || st.Replicas != replicas || st.AvailableReplicas != replicas {
				return fmt.Errorf("status %+v", st)
			}
			return checkPods(ctx, ns, version)
		}
	}
	framework.Eventually(t, 3*time.Minute, "first rollout of 200", done("1"))
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"c","env":[{"name":"V","value":"2"}]}]}}}}`
	if _, err := env.Client.AppsV1().Deployments(ns).Patch(ctx, "big", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// Kill once the new version has some pods but is far from done.
	framework.Eventually(t, time.Minute, "rollout under way", func() error {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		n := 0
		for _, p := range pods.Items {
			if p.Spec.Containers[0].Env[0].Value == "2" {
				n++
			}
		}
		if n < 20 {
			return fmt.Errorf("%d new pods", n)
		}
		return nil
	})
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
	startManager(t, kc)
	framework.Eventually(t, 3*time.Minute, "rollout finished after restart", done("2"))
}

// checkPods verifies the end state: exactly 200 live pods, all of version, and no
// ReplicaSet owning more pods than its spec asks for (the mark of duplicates).
func checkPods(ctx context.Context, ns, version string) error {
	rss, err := env.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	owned := map[types.UID]int32{}
	live := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		live++
		if ref := metav1.GetControllerOf(&p); ref != nil {
			owned[ref.UID]++
		}
		if p.Spec.Containers[0].Env[0].Value != version {
			return fmt.Errorf("pod %s is of another version", p.Name)
		}
	}
	for _, rs := range rss.Items {
		if n := owned[rs.UID]; n > ptr.Deref(rs.Spec.Replicas, 0) {
			return fmt.Errorf("ReplicaSet %s owns %d pods for %d replicas", rs.Name, n, ptr.Deref(rs.Spec.Replicas, 0))
		}
	}
	if live != 200 {
		return fmt.Errorf("%d live pods, want exactly 200", live)
	}
	return nil
}

// Two instances elect one leader through their own Lease (never kube-controller-
// manager's); when the leader dies the other takes over and keeps working.
func TestLeaderElectionFailover(t *testing.T) {
	ctx := context.Background()
	kc := env.WriteKubeconfig(t)
	ns, err := env.Namespace(ctx, "leader-")
	if err != nil {
		t.Fatal(err)
	}
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	framework.FakeKubelet(kctx, env.Client, ns, nil)
	a := startManager(t, kc)
	b := startManager(t, kc)
	framework.Eventually(t, 30*time.Second, "a leader", func() error {
		l, err := env.Client.CoordinationV1().Leases("kube-system").Get(ctx, "kubeparts-controller-manager", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ptr.Deref(l.Spec.HolderIdentity, "") == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})
	if _, err := env.Client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{}); err == nil {
		t.Fatal("the stock manager's Lease was created by kubeparts")
	}
	// Kill one instance. Whether it led or not, a Lease renewed after its death proves a
	// live leader: the other one, which already led or has taken over.
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
	killedAt := time.Now()
	framework.Eventually(t, 30*time.Second, "a live leader after the kill", func() error {
		l, err := env.Client.CoordinationV1().Leases("kube-system").Get(ctx, "kubeparts-controller-manager", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if l.Spec.RenewTime == nil || !l.Spec.RenewTime.After(killedAt.Add(time.Second)) {
			return fmt.Errorf("lease held by %q last renewed %v", ptr.Deref(l.Spec.HolderIdentity, ""), l.Spec.RenewTime)
		}
		return nil
	})
	if !leaderAlive(b) {
		t.Fatal("the surviving instance exited")
	}
	labels := map[string]string{"app": "after-failover"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "after-failover"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}}}},
	}
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 60*time.Second, "the surviving instance rolls out", func() error {
		cur, err := env.Client.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Status.AvailableReplicas != 2 {
			return fmt.Errorf("status %+v", cur.Status)
		}
		return nil
	})
}

func leaderAlive(m *manager) bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}
