package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeparts/kubeparts/internal/localcluster"
)

// helmCmd runs the real helm CLI (bin/helm) against the cluster, with no
// user configuration.
func helmCmd(t *testing.T, bin, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "helm"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// TestUpHelm installs the chart as the chart's README tells users to, on a
// `kubeparts up` cluster whose controller manager, scheduler and API
// extension are the stock ones (the images from `make image` imported on the
// node): the pieces then run as pods, hold their Leases and serve `kubectl
// top`; an upgrade keeps the generated CA and applies the new values, a
// mistyped value is refused without touching the release, and uninstall
// hands back to stock (the stock scheduler still places pods, no APIService
// of the chart's is left).
func TestUpHelm(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	if _, err := os.Stat(filepath.Join(bin, "helm")); err != nil {
		t.Fatalf("%v: make %s", err, filepath.Join(bin, "helm"))
	}
	images := []string{"kubeparts-controller-manager", "kubeparts-scheduler", "kubeparts-apiserver"}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := tempDataDir(t)
	const name = "hm"
	up := startUp(t, bin, "--data-dir", dataDir, "--port-base", "30443", "--node-name", name, "--stock", "controller-manager,scheduler,apiserver")
	kc := up.waitReady(t, 5*time.Minute)
	layout, err := localcluster.LayoutFor(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range images {
		archive := filepath.Join(bin, "images", i+".tar")
		if out, err := exec.Command("ctr", "--address", filepath.Join(layout.RunDir, "containerd.sock"), "-n", "k8s.io", "images", "import", archive).CombinedOutput(); err != nil {
			t.Fatalf("import %s (make image): %v: %s", archive, err, out)
		}
	}
	chart := filepath.Join(repo, "charts", "kubeparts")
	// The README's install, as written (the stock manager runs every
	// controller here: the chart's runs only kubeparts' own, so nothing is
	// reconciled twice), waiting for the pods.
	lines := readmeHelm(t, "helm-install")
	if len(lines) != 1 || lines[0][0] != "install" {
		t.Fatalf("README helm-install block: %q, want one helm install", lines)
	}
	install := lines[0]
	for i, a := range install {
		if a == "charts/kubeparts" {
			install[i] = chart
		}
	}
	install = append(install, "--wait", "--timeout", "5m")
	eventually(t, 6*time.Minute, "helm install", func() error {
		_, err := helmCmd(t, bin, kc, install...)
		if err != nil && strings.Contains(err.Error(), "cannot re-use a name") {
			return nil // an earlier attempt got as far as the release
		}
		return err
	})
	leaseHeldByPod(t, bin, kc, "kubeparts-controller-manager", "app.kubernetes.io/name=kubeparts-controller-manager")
	leaseHeldByPod(t, bin, kc, "kubeparts-scheduler", "app.kubernetes.io/name=kubeparts-scheduler")
	eventually(t, 2*time.Minute, "kubectl top nodes through the chart's kubeparts-apiserver", func() error {
		out, err := kubectl(t, bin, kc, "top", "nodes")
		if err != nil {
			return err
		}
		if !strings.Contains(out, name) {
			return fmt.Errorf("top: %s", out)
		}
		return nil
	})
	get := func(path string, obj ...string) string {
		t.Helper()
		out, err := kubectl(t, bin, kc, append(append([]string{"get"}, obj...), "-o", "jsonpath="+path)...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	ca := get(`{.data.ca\.crt}`, "-n", "kube-system", "secret/kubeparts-apiserver-tls")

	// A mistyped value: refused by the schema, the release stays as it was.
	if out, err := helmCmd(t, bin, kc, "upgrade", "kubeparts", chart, "--namespace", "kube-system", "--reuse-values", "--set", "scheduler.replicas=two"); err == nil || !strings.Contains(out, "/scheduler/replicas") {
		t.Errorf("upgrade with scheduler.replicas=two: %v\n%s\nwant a schema error naming /scheduler/replicas", err, out)
	}
	if rev := get("{.items[*].metadata.labels.version}", "-n", "kube-system", "secret", "-l", "owner=helm,name=kubeparts,status=deployed"); rev != "1" {
		t.Errorf("deployed revision %q after a refused upgrade, want 1", rev)
	}
	// A real upgrade: new values applied, the generated CA kept.
	if _, err := helmCmd(t, bin, kc, "upgrade", "kubeparts", chart, "--namespace", "kube-system", "--reuse-values", "--wait", "--timeout", "5m", "--set", "scheduler.replicas=1"); err != nil {
		t.Fatal(err)
	}
	if n := get("{.spec.replicas}", "-n", "kube-system", "deployment/kubeparts-scheduler"); n != "1" {
		t.Errorf("scheduler replicas %q after the upgrade, want 1", n)
	}
	if after := get(`{.data.ca\.crt}`, "-n", "kube-system", "secret/kubeparts-apiserver-tls"); after != ca {
		t.Error("the upgrade replaced the generated CA: aggregation breaks until every pod restarts")
	}
	if _, err := kubectl(t, bin, kc, "top", "pods", "-n", "kube-system"); err != nil {
		t.Errorf("kubectl top after the upgrade: %v", err)
	}

	// Uninstall: the stock pieces are in charge again.
	if _, err := helmCmd(t, bin, kc, "uninstall", "kubeparts", "--namespace", "kube-system", "--wait", "--timeout", "3m"); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []string{"apiservice/v1beta1.metrics.k8s.io", "apiservice/v1alpha1.controlplane.kubeparts.dev", "-n kube-system deployment/kubeparts-controller-manager", "clusterrole/kubeparts-apiserver"} {
		if out, err := kubectl(t, bin, kc, append(append([]string{"get"}, strings.Fields(obj)...), "--ignore-not-found", "-o", "name")...); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("%s after uninstall: %q %v", obj, out, err)
		}
	}
	apply(t, bin, kc, `apiVersion: v1
kind: Pod
metadata: {name: after-uninstall}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: `+localcluster.SandboxImage+`, imagePullPolicy: Never}
`)
	eventually(t, 60*time.Second, "the stock scheduler places pods after uninstall", func() error {
		if node := get("{.spec.nodeName}", "pod/after-uninstall"); node != name {
			return fmt.Errorf("pod on %q", node)
		}
		return nil
	})

	if code := up.stop(t, syscall.SIGINT, 90*time.Second); code != 0 {
		t.Errorf("up exit %d:\n%s", code, up.output())
	}
	assertNothingLeft(t, dataDir)
}

// readmeHelm returns the arguments of each helm command in the README's
// block name (continuation lines joined, single quotes removed as the shell would).
func readmeHelm(t *testing.T, name string) [][]string {
	t.Helper()
	var out [][]string
	for _, line := range strings.Split(strings.ReplaceAll(readmeBlock(t, name), "\\\n", " "), "\n") {
		line, _, _ = strings.Cut(line, "#")
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "helm "); ok {
			var args []string
			for _, f := range strings.Fields(rest) {
				args = append(args, strings.Trim(f, "'"))
			}
			out = append(out, args)
		}
	}
	return out
}
