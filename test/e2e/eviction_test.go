package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeparts/kubeparts/internal/localcluster"
)

// Pods for a node whose memory.available is always under the threshold:
// a Burstable pod (admitted, then evicted), a BestEffort pod (turned away at
// admission) and a critical BestEffort pod (admitted and never evicted).
const evictionPods = `apiVersion: v1
kind: Pod
metadata: {name: victim, namespace: default}
spec:
  nodeName: evict
  terminationGracePeriodSeconds: 30
  containers:
  - name: c
    image: docker.io/library/busybox:1.35
    imagePullPolicy: Never
    command: [sleep, "3600"]
    resources: {requests: {cpu: "1m"}}
---
apiVersion: v1
kind: Pod
metadata: {name: besteffort, namespace: default}
spec:
  nodeName: evict
  containers:
  - {name: c, image: docker.io/library/busybox:1.35, imagePullPolicy: Never, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: critical, namespace: kube-system}
spec:
  nodeName: evict
  priorityClassName: system-node-critical
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: docker.io/library/busybox:1.35, imagePullPolicy: Never, command: [sleep, "3600"]}
`

// TestNodeAgentEviction runs a node agent whose memory.available threshold
// is above the machine's memory, so the node is always under memory
// pressure, and checks the kubelet's hard-eviction behaviour end to end.
// As with the kubelet, the threshold leaves no allocatable memory, so the
// Burstable victim requests CPU only (a memory request would be refused
// at admission, OutOfmemory).
func TestNodeAgentEviction(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	dataDir := tempDataDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := localcluster.Start(ctx, localcluster.Options{DataDir: dataDir, BinDir: bin, PortBase: 26443, NodeName: "evict", Out: testWriter{t},
		NodeAgentArgs: []string{"--eviction-hard=memory.available<1000Ti"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	kc := c.Kubeconfig()
	eventually(t, 60*time.Second, "node reports MemoryPressure", func() error {
		out, _ := kubectl(t, bin, kc, "get", "node", "evict", "-o", `jsonpath={.status.conditions[?(@.type=="MemoryPressure")].status}`)
		if out != "True" {
			return &unexpected{out}
		}
		return nil
	})
	manifest := filepath.Join(dataDir, "pods.yaml")
	if err := os.WriteFile(manifest, []byte(evictionPods), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "create pods", func() error { _, err := kubectl(t, bin, kc, "apply", "-f", manifest); return err })

	get := func(ns, name, jsonpath string) string {
		out, _ := kubectl(t, bin, kc, "-n", ns, "get", "pod", name, "-o", "jsonpath="+jsonpath)
		return out
	}
	eventually(t, 60*time.Second, "BestEffort pod turned away at admission", func() error {
		out := get("default", "besteffort", "{.status.phase}|{.status.reason}|{.status.message}|{.status.containerStatuses[0].state.running}")
		if out != "Failed|Evicted|Pod was rejected: The node had condition: [MemoryPressure]. |" {
			return &unexpected{out}
		}
		return nil
	})
	eventually(t, 90*time.Second, "Burstable pod evicted", func() error {
		out := get("default", "victim", `{.status.phase}|{.status.reason}|{.status.message}|{.status.conditions[?(@.type=="DisruptionTarget")].reason}|{.status.containerStatuses[0].state.terminated.exitCode}`)
		f := strings.Split(out, "|")
		if len(f) != 5 || f[0] != "Failed" || f[1] != "Evicted" || !strings.HasPrefix(f[2], "The node was low on resource: memory. Threshold quantity: 1000Ti, available: ") ||
			!strings.Contains(f[2], "Container c was using ") || f[3] != "TerminationByKubelet" || f[4] == "" {
			return &unexpected{out + " " + get("default", "victim", "{.status.containerStatuses}")}
		}
		return nil
	})
	eventually(t, 30*time.Second, "Evicted events", func() error {
		out, _ := kubectl(t, bin, kc, "get", "events", "-n", "default", "--field-selector", "reason=Evicted", "-o", "jsonpath={range .items[*]}{.involvedObject.name}:{.source.component} {end}")
		if !strings.Contains(out, "victim:kubelet") || !strings.Contains(out, "besteffort:kubelet") {
			return &unexpected{out}
		}
		return nil
	})
	// The critical pod is the only candidate left; through the next rounds
	// (every 10 s) it keeps running in its first container.
	eventually(t, 60*time.Second, "critical pod running", func() error {
		if out := get("kube-system", "critical", "{.status.phase} {.status.containerStatuses[0].restartCount}"); out != "Running 0" {
			return &unexpected{out}
		}
		return nil
	})
	for deadline := time.Now().Add(25 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if out := get("kube-system", "critical", "{.status.phase} {.status.reason} {.status.containerStatuses[0].restartCount}"); out != "Running  0" {
			t.Fatalf("critical pod: %q, want it left running", out)
		}
	}
	// The evicted pod stays Failed: its containers are not started again.
	if out := get("default", "victim", "{.status.phase} {.status.containerStatuses[0].restartCount}"); out != "Failed 0" {
		t.Errorf("victim after the rounds: %q", out)
	}
	if out, err := kubectl(t, bin, kc, "delete", "pod", "victim", "besteffort", "--timeout=60s"); err != nil {
		t.Fatalf("delete: %v %s", err, out)
	}
	if out, err := kubectl(t, bin, kc, "-n", "kube-system", "delete", "pod", "critical", "--timeout=60s"); err != nil {
		t.Fatal(fmt.Errorf("delete: %v %s", err, out))
	}
}
