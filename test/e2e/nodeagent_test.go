package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeparts/kubeparts/internal/localcluster"
)

const agentPod = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: on-agent, namespace: default}
  spec:
    initContainers: [{name: setup, image: registry.k8s.io/pause:3.10, imagePullPolicy: Never, command: ["/pause"], args: ["-v"]}]
    containers: [{name: c, image: registry.k8s.io/pause:3.10, imagePullPolicy: Never, env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}],
      resources: {requests: {cpu: 100m}, limits: {cpu: 200m, memory: 64Mi}}}]
# Exits at once: restarted under restartPolicy Always until it is crash-looping.
- apiVersion: v1
  kind: Pod
  metadata: {name: crasher, namespace: default}
  spec:
    containers: [{name: c, image: registry.k8s.io/pause:3.10, imagePullPolicy: Never, command: ["/pause"], args: ["-v"]}]
# Exits 0 under restartPolicy Never: the pod Succeeded.
- apiVersion: v1
  kind: Pod
  metadata: {name: once, namespace: default}
  spec:
    restartPolicy: Never
    containers: [{name: c, image: registry.k8s.io/pause:3.10, imagePullPolicy: Never, command: ["/pause"], args: ["-v"]}]
`

// TestUpExperimentalNodeAgent: `kubeparts up --experimental-nodeagent` runs
// kubeparts-nodeagent instead of the kubelet; the node registers Ready under
// NodeRestriction, a pod runs on containerd with a CNI address and the stock
// status fields, deletion removes it, and Ctrl-C leaves nothing behind.
func TestUpExperimentalNodeAgent(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	dataDir := tempDataDir(t)
	up := startUp(t, bin, "--data-dir", dataDir, "--port-base", "21443", "--experimental-nodeagent")
	kc := up.waitReady(t, 4*time.Minute)
	if !strings.Contains(up.output(), "kubeparts-nodeagent") {
		t.Fatalf("up did not start kubeparts-nodeagent:\n%s", up.output())
	}
	manifest := filepath.Join(dataDir, "agent-pod.yaml")
	if err := os.WriteFile(manifest, []byte(agentPod), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "create pod", func() error {
		_, err := kubectl(t, bin, kc, "apply", "-f", manifest)
		return err
	})
	eventually(t, 90*time.Second, "pod running on containerd", func() error {
		out, err := kubectl(t, bin, kc, "get", "pod", "on-agent", "-o",
			"jsonpath={.status.phase} {.status.podIP} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].ready} {.status.initContainerStatuses[0].state.terminated.reason}")
		f := strings.Fields(out)
		if err != nil || len(f) != 5 || f[0] != "Running" || !strings.HasPrefix(f[1], "10.2") || !strings.HasPrefix(f[2], "containerd://") || f[3] != "true" || f[4] != "Completed" {
			return &unexpected{out}
		}
		return nil
	})
	// What containerd was asked to run: the environment and the cgroup limits.
	id, err := kubectl(t, bin, kc, "get", "pod", "on-agent", "-o", "jsonpath={.status.containerStatuses[0].containerID}")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := localcluster.LayoutFor(dataDir)
	info, err := exec.Command("ctr", "--address", filepath.Join(l.RunDir, "containerd.sock"), "--namespace", "k8s.io",
		"containers", "info", strings.TrimPrefix(id, "containerd://")).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr containers info: %v %s", err, info)
	}
	for _, want := range []string{`"POD_NAME=on-agent"`, `"quota": 20000`, `"limit": 67108864`, `"shares": 102`} {
		if !strings.Contains(string(info), want) {
			t.Errorf("container spec lacks %s", want)
		}
	}
	eventually(t, 90*time.Second, "restartPolicy Never pod Succeeded", func() error {
		out, err := kubectl(t, bin, kc, "get", "pod", "once", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.reason}")
		if err != nil || out != "Succeeded Completed" {
			return &unexpected{out}
		}
		return nil
	})
	eventually(t, 90*time.Second, "exiting container crash-looping with restarts", func() error {
		out, err := kubectl(t, bin, kc, "get", "pod", "crasher", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].state.waiting.reason} {.status.containerStatuses[0].lastState.terminated.reason}")
		f := strings.Fields(out)
		if err != nil || len(f) != 4 || f[0] != "Running" || f[1] == "0" || f[2] != "CrashLoopBackOff" || f[3] != "Completed" {
			return &unexpected{out}
		}
		return nil
	})
	if out, err := kubectl(t, bin, kc, "delete", "pod", "on-agent", "crasher", "once", "--timeout=60s"); err != nil {
		t.Fatalf("delete: %v %s", err, out)
	}
	if code := up.stop(t, syscall.SIGINT, 90*time.Second); code != 0 {
		t.Errorf("up exited %d:\n%s", code, up.output())
	}
	assertNothingLeft(t, dataDir)
}
