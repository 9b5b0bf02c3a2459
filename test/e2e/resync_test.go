package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubeparts/kubeparts/internal/localcluster"
)

// TestNodeAgentResync: restarting the node agent, containerd or
// kube-apiserver under running pods restarts no container and loses no
// status, and the node keeps running new pods afterwards (the kubelet's
// resync contract).
func TestNodeAgentResync(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	dataDir := tempDataDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Small container logs, so that a chatty pod's are rotated within the test.
	c, err := localcluster.Start(ctx, localcluster.Options{DataDir: dataDir, BinDir: bin, PortBase: 22443, Out: testWriter{t},
		NodeAgentArgs: []string{"--container-log-max-size=2Ki", "--container-log-max-files=3"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	kc := c.Kubeconfig()
	run := func(name string) {
		t.Helper()
		manifest := filepath.Join(dataDir, name+".yaml")
		pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: default}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers: [{name: c, image: busybox:1.35, imagePullPolicy: Never, command: [sleep, \"3600\"]}]\n"
		if err := os.WriteFile(manifest, []byte(pod), 0o644); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "create "+name, func() error { _, err := kubectl(t, bin, kc, "apply", "-f", manifest); return err })
		eventually(t, 90*time.Second, name+" Running and Ready", func() error {
			out, _ := kubectl(t, bin, kc, "get", "pod", name, "-o", `jsonpath={.status.phase} {.status.conditions[?(@.type=="Ready")].status}`)
			if out != "Running True" {
				return &unexpected{out}
			}
			return nil
		})
	}
	// Everything of the status that a restart must not change.
	state := func() string {
		out, err := kubectl(t, bin, kc, "get", "pod", "steady", "-o", `jsonpath={.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount} {.status.podIP} {.status.startTime} {.status.conditions[?(@.type=="Ready")].lastTransitionTime} {.status.containerStatuses[0].state.running.startedAt}`)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	run("steady")
	before := state()
	// About 10 kB/s of log through all the restarts below.
	chatty := filepath.Join(dataDir, "chatty.yaml")
	if err := os.WriteFile(chatty, []byte(`apiVersion: v1
kind: Pod
metadata: {name: chatty, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/busybox:1.35
    imagePullPolicy: Never
    command: [sh, -c, 's=0123456789; s=$s$s$s$s$s$s$s$s$s$s; s=$s$s$s$s$s$s$s$s$s$s; while true; do echo $s; sleep 0.1; done']
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, bin, kc, "apply", "-f", chatty); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, component := range []string{"kubeparts-nodeagent", "containerd", "kube-apiserver"} {
		if err := c.Restart(component); err != nil {
			t.Fatal(err)
		}
		// A new pod runs: the agent is working again after the restart.
		fresh := "after-" + strings.TrimPrefix(component, "kube")
		run(fresh)
		if got := state(); got != before {
			t.Errorf("after restarting %s the running pod changed:\n  before %s\n  after  %s", component, before, got)
		}
	}
	// A pod force-deleted while the agent is down leaves an orphan: its
	// containers and its directory (with a tmpfs for its token) go when the
	// agent is back.
	run("orphan")
	uid, err := kubectl(t, bin, kc, "get", "pod", "orphan", "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := localcluster.LayoutFor(dataDir)
	podDir := filepath.Join(l.Node, "nodeagent", "pods", uid)
	if _, err := os.Stat(podDir); err != nil {
		t.Fatalf("pod directory of a running pod: %v", err)
	}
	if err := c.RestartAfter("kubeparts-nodeagent", func() error {
		_, err := kubectl(t, bin, kc, "delete", "pod", "orphan", "--grace-period=0", "--force")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "orphaned containers and pod directory removed", func() error {
		out, err := exec.Command("ctr", "--address", filepath.Join(l.RunDir, "containerd.sock"), "--namespace", "k8s.io", "containers", "list", "-q",
			"labels.\"io.kubernetes.pod.uid\"=="+uid).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			return &unexpected{fmt.Sprintf("containers %q %v", out, err)}
		}
		if _, err := os.Stat(podDir); !os.IsNotExist(err) {
			return &unexpected{fmt.Sprintf("pod directory: %v", err)}
		}
		return nil
	})
	if got := state(); got != before {
		t.Errorf("housekeeping changed the running pod:\n  before %s\n  after  %s", before, got)
	}
	// The chatty pod's log was rotated (the kubelet's layout: the current
	// file, the newest rotated one, older ones gzipped, at most 3 files) and
	// kubectl logs still reads the current one.
	chattyUID, err := kubectl(t, bin, kc, "get", "pod", "chatty", "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(l.Node, "pods", "default_chatty_"+chattyUID, "c")
	eventually(t, 60*time.Second, "chatty pod's log rotated and compressed", func() error {
		entries, err := os.ReadDir(logDir)
		if err != nil {
			return err
		}
		var names []string
		gz := 0
		for _, e := range entries {
			names = append(names, e.Name())
			if strings.HasPrefix(e.Name(), "0.log.") && strings.HasSuffix(e.Name(), ".gz") {
				gz++
			}
		}
		if gz == 0 || len(entries) > 3 || !slices.Contains(names, "0.log") {
			return &unexpected{strings.Join(names, " ")}
		}
		return nil
	})
	// Polled: the current file is empty for a moment after each rotation (a
	// clean-clone CI run read it then), as with the kubelet.
	eventually(t, 10*time.Second, "kubectl logs after rotation", func() error {
		if out, err := kubectl(t, bin, kc, "logs", "chatty", "--tail=1"); err != nil || !strings.HasPrefix(out, "0123456789") {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})
	if out, err := kubectl(t, bin, kc, "delete", "pod", "--all", "--timeout=60s"); err != nil {
		t.Fatalf("delete: %v %s", err, out)
	}
}

// testWriter sends the cluster's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
