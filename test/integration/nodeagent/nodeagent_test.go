// Package nodeagent runs the real bin/kubeparts-nodeagent with the simulated
// runtime against a real kube-apiserver: node registration, leases,
// conditions, a pod's life from binding to deletion, and bad flags.
package nodeagent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) { os.Exit(framework.Main(m, "nodeagent", &env)) }

func startAgent(t *testing.T, args ...string) {
	t.Helper()
	env.Run(t, "kubeparts-nodeagent", append([]string{"--kubeconfig=" + env.WriteKubeconfig(t)}, args...)...)
}

// TestSimulatedNodesRunPods: three simulated nodes register Ready with their
// Leases; a pod bound to one goes through its init container to Running and
// Ready with the status fields clients read; deleting it removes it.
func TestSimulatedNodesRunPods(t *testing.T) {
	ctx := context.Background()
	startAgent(t, "--hostname-override=sim", "--simulate-nodes=3", "--system-reserved=cpu=500m,memory=1Gi", "--node-labels=zone=a")
	for i := range 3 {
		name := fmt.Sprintf("sim-%d", i)
		framework.Eventually(t, 30*time.Second, name+" Ready with a Lease", func() error {
			n, err := env.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			ready := false
			for _, c := range n.Status.Conditions {
				ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
			}
			if !ready {
				return fmt.Errorf("not Ready: %+v", n.Status.Conditions)
			}
			if cpu := n.Status.Allocatable.Cpu().MilliValue(); cpu != 3500 {
				return fmt.Errorf("allocatable cpu %dm, want 3500m (4 minus 500m reserved)", cpu)
			}
			if n.Labels["zone"] != "a" || n.Status.NodeInfo.KubeletVersion == "" || n.Status.DaemonEndpoints.KubeletEndpoint.Port == 0 {
				return fmt.Errorf("labels %v nodeInfo %+v", n.Labels, n.Status.NodeInfo)
			}
			l, err := env.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != name || *l.Spec.LeaseDurationSeconds != 40 || len(l.OwnerReferences) != 1 {
				return fmt.Errorf("lease %+v", l.Spec)
			}
			return nil
		})
	}

	ns, err := env.Namespace(ctx, "agent-")
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.PodSpec{NodeName: "sim-1",
			InitContainers: []corev1.Container{{Name: "setup", Image: "busybox"}},
			Containers:     []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, "pod Running and Ready", func() error {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := p.Status
		if st.Phase != corev1.PodRunning || !strings.HasPrefix(st.PodIP, "10.128.1.") || st.HostIP == "" || st.StartTime == nil {
			return fmt.Errorf("phase %s podIP %q hostIP %q", st.Phase, st.PodIP, st.HostIP)
		}
		conds := map[corev1.PodConditionType]corev1.ConditionStatus{}
		for _, c := range st.Conditions {
			conds[c.Type] = c.Status
		}
		for _, c := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			if conds[c] != corev1.ConditionTrue {
				return fmt.Errorf("condition %s = %q", c, conds[c])
			}
		}
		if len(st.InitContainerStatuses) != 1 || st.InitContainerStatuses[0].State.Terminated == nil || st.InitContainerStatuses[0].State.Terminated.Reason != "Completed" {
			return fmt.Errorf("init container status %+v", st.InitContainerStatuses)
		}
		cs := st.ContainerStatuses
		if len(cs) != 1 || cs[0].State.Running == nil || !cs[0].Ready || cs[0].Started == nil || !*cs[0].Started || cs[0].ContainerID == "" || cs[0].ImageID == "" {
			return fmt.Errorf("container status %+v", cs)
		}
		return nil
	})
	framework.Eventually(t, 30*time.Second, "Created and Started events from the node", func() error {
		return hasEvents(ctx, ns, "web", "sim-1", "Created", "Started")
	})
	if err := env.Client.CoreV1().Pods(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, "pod removed after graceful deletion", func() error {
		_, err := env.Client.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
}

// TestBadFlags: mistakes stop the agent at once with a clear message.
func TestBadFlags(t *testing.T) {
	kc := env.WriteKubeconfig(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--hostname-override=n", "--runtime=containerd"}, `want simulated or remote`},
		{[]string{"--hostname-override=N_1"}, "must be a DNS subdomain"},
		{[]string{"--hostname-override=n", "--node-labels=node-role.kubernetes.io/worker="}, "NodeRestriction forbids"},
		{[]string{"--hostname-override=n", "--register-with-taints=a=b:Sometimes"}, "want key=value:NoSchedule"},
		{[]string{"--hostname-override=n", "--system-reserved=cpu"}, "want name=quantity pairs"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, framework.Binary(t, "kubeparts-nodeagent"), append([]string{"--kubeconfig=" + kc}, tc.args...)...).CombinedOutput()
		cancel()
		// klog quotes the error: compare the unescaped text.
		if text := strings.ReplaceAll(string(out), `\"`, `"`); err == nil || !strings.Contains(text, tc.want) {
			t.Errorf("%v: err %v, output %q; want a failure saying %q", tc.args, err, out, tc.want)
		}
	}
}

// TestMissingConfigMap: a container whose env needs a ConfigMap that does not
// exist waits with the stock CreateContainerConfigError; an optional one is
// skipped; once the ConfigMap exists the pod runs.
func TestMissingConfigMap(t *testing.T) {
	ctx := context.Background()
	startAgent(t, "--hostname-override=cfg")
	ns, err := env.Namespace(ctx, "cfg-")
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "needs-config", Namespace: ns},
		Spec: corev1.PodSpec{NodeName: "cfg", Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10", Env: []corev1.EnvVar{
			{Name: "REQUIRED", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "mode"}}},
			{Name: "OPTIONAL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Key: "x", Optional: ptr.To(true)}}},
		}}}},
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, "CreateContainerConfigError", func() error {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "needs-config", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cs := p.Status.ContainerStatuses; len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "CreateContainerConfigError" ||
			!strings.Contains(cs[0].State.Waiting.Message, `configmap "settings" not found`) {
			return fmt.Errorf("container statuses %+v", cs)
		}
		return nil
	})
	framework.Eventually(t, 30*time.Second, "Failed event naming the ConfigMap", func() error {
		evs, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=needs-config"})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Type == corev1.EventTypeWarning && e.Reason == "Failed" && strings.Contains(e.Message, `configmap "settings" not found`) {
				return nil
			}
		}
		return fmt.Errorf("no Failed event yet")
	})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: ns}, Data: map[string]string{"mode": "fast"}}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, "running once the ConfigMap exists", func() error {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "needs-config", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %s %+v", p.Status.Phase, p.Status.ContainerStatuses)
		}
		return nil
	})
}

// hasEvents checks the pod has events with each reason, reported by the
// kubelet component from host.
func hasEvents(ctx context.Context, ns, pod, host string, reasons ...string) error {
	evs, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, e := range evs.Items {
		if e.Source.Component == "kubelet" && e.Source.Host == host {
			seen[e.Reason] = true
		}
	}
	for _, r := range reasons {
		if !seen[r] {
			return fmt.Errorf("no %s event from kubelet/%s (have %v)", r, host, seen)
		}
	}
	return nil
}
