// Package kind runs kubeparts in a kind cluster, as users test Kubernetes extensions:
// kind on podman (these machines have no Docker engine), a node image built by
// hack/kind/node-image.sh from the pinned stock binaries, the images from `make image`
// loaded with `kind load image-archive`, the chart installed with helm. `make test-kind`
// runs it (root, podman); elsewhere it skips.
package kind

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubeparts/kubeparts/test/integration/framework"
)

// clusterName is this test's kind cluster. One left by an interrupted run is deleted
// first: it is this test's own, and its state is unknown.
const clusterName = "kubeparts-e2e"

type env struct {
	t        *testing.T
	repo     string
	bin      string
	kc       string
	extraEnv []string
}

func (e *env) run(timeout time.Duration, name string, args ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), e.extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

func (e *env) must(timeout time.Duration, name string, args ...string) string {
	e.t.Helper()
	out, err := e.run(timeout, name, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) kubectl(args ...string) (string, error) {
	e.t.Helper()
	return e.run(time.Minute, filepath.Join(e.bin, "kubectl"), append([]string{"--kubeconfig", e.kc}, args...)...)
}

func (e *env) kind(timeout time.Duration, args ...string) (string, error) {
	e.t.Helper()
	return e.run(timeout, filepath.Join(e.bin, "kind"), args...)
}

func TestKind(t *testing.T) {
	if os.Getenv("KUBEPARTS_KIND") == "" {
		t.Skip("make test-kind runs it (KUBEPARTS_KIND=1, root, podman)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("kind on podman needs root here")
	}
	bin, err := framework.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, repo: repo, bin: bin, kc: filepath.Join(t.TempDir(), "kubeconfig"),
		extraEnv: []string{"KIND_EXPERIMENTAL_PROVIDER=podman", "CONTAINERS_CONF=" + filepath.Join(repo, "hack", "kind", "containers.conf")}}
	for _, tool := range []string{"kind", "kubeadm", "kubectl", "helm"} {
		if _, err := os.Stat(filepath.Join(bin, tool)); err != nil {
			t.Fatalf("%v (make test-kind builds it)", err)
		}
	}
	// kind mounts the host's /lib/modules into its nodes; a kernel without modules has
	// none, and an empty directory is all kind needs.
	if err := os.MkdirAll("/lib/modules", 0o755); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	out := e.must(30*time.Minute, filepath.Join(repo, "hack", "kind", "node-image.sh"), bin)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	image := lines[len(lines)-1]
	t.Logf("node image %s in %s", image, time.Since(start).Round(time.Second))

	if clusters, err := e.kind(time.Minute, "get", "clusters"); err == nil && strings.Contains("\n"+clusters+"\n", "\n"+clusterName+"\n") {
		t.Logf("deleting the kind cluster %s a previous run left", clusterName)
		if _, err := e.kind(3*time.Minute, "delete", "cluster", "--name", clusterName); err != nil {
			t.Fatal(err)
		}
	}
	cfg := clusterConfig(t, repo, image)
	start = time.Now()
	t.Cleanup(func() {
		if os.Getenv("KEEP_KIND") != "" {
			t.Logf("KEEP_KIND: the cluster stays (kind delete cluster --name %s; KUBECONFIG=%s)", clusterName, e.kc)
			return
		}
		if out, err := e.kind(3*time.Minute, "delete", "cluster", "--name", clusterName); err != nil {
			t.Errorf("kind delete cluster: %v\n%s", err, out)
		}
		// kind leaves its podman network (and netavark's firewall rules for it) behind.
		if out, err := e.run(time.Minute, "podman", "network", "rm", "kind"); err != nil && !strings.Contains(out, "not found") {
			t.Logf("podman network rm kind: %v", err)
		}
	})
	if _, err := e.kind(10*time.Minute, "create", "cluster", "--name", clusterName, "--config", cfg, "--kubeconfig", e.kc, "--retain"); err != nil {
		t.Fatal(err)
	}
	t.Logf("kind create cluster in %s", time.Since(start).Round(time.Second))
	routePodRanges(t, e)
	framework.Eventually(t, 5*time.Minute, "every node Ready", func() error {
		out, err := e.kubectl("get", "nodes", "--no-headers")
		if err != nil {
			return err
		}
		if strings.Count(out, " Ready ") != 2 {
			return fmt.Errorf("nodes:\n%s", out)
		}
		return nil
	})
	installChart(t, e)
}

// installChart loads the images from `make image` and installs the chart as
// config/kind/cluster.yaml says. That cluster's kube-controller-manager leaves
// kubeparts' controllers to the kubeparts-controller-manager static pod: CoreDNS,
// kube-proxy and every Deployment only get pods once it runs.
func installChart(t *testing.T, e *env) {
	t.Helper()
	for _, i := range []string{"kubeparts-controller-manager", "kubeparts-scheduler", "kubeparts-apiserver"} {
		if _, err := e.kind(3*time.Minute, "load", "image-archive", filepath.Join(e.bin, "images", i+".tar"), "--name", clusterName); err != nil {
			t.Fatal(err)
		}
	}
	framework.Eventually(t, 5*time.Minute, "the static kubeparts-controller-manager leading, CoreDNS and kube-proxy rolled out by it", func() error {
		holder, err := e.kubectl("-n", "kube-system", "get", "lease", "kubeparts-controller-manager", "-o", "jsonpath={.spec.holderIdentity}")
		if err != nil || !strings.HasPrefix(holder, clusterName+"-control-plane") {
			return fmt.Errorf("Lease holder %q (%v)", holder, err)
		}
		if _, err := e.kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=5s"); err != nil {
			return err
		}
		_, err = e.kubectl("-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=5s")
		return err
	})
	helmEnv := t.TempDir()
	e.extraEnv = append(e.extraEnv, "HELM_CACHE_HOME="+helmEnv, "HELM_CONFIG_HOME="+helmEnv, "HELM_DATA_HOME="+helmEnv)
	start := time.Now()
	// kind's kubelets serve self-signed certificates (no serverTLSBootstrap): the
	// metrics-server setting for that.
	if _, err := e.run(6*time.Minute, filepath.Join(e.bin, "helm"), "--kubeconfig", e.kc, "install", "kubeparts", filepath.Join(e.repo, "charts", "kubeparts"),
		"--namespace", "kube-system", "--wait", "--timeout", "5m", "--set", "apiserver.kubelet.insecureTLS=true", "--set", "controllerManager.enabled=false"); err != nil {
		t.Fatal(err)
	}
	t.Logf("helm install --wait in %s", time.Since(start).Round(time.Second))
	framework.LeaseHeldByPod(t, 90*time.Second, e.kubectl, "kubeparts-scheduler", "app.kubernetes.io/name=kubeparts-scheduler")
	if _, err := e.kubectl("create", "deployment", "web", "--image=registry.k8s.io/pause:3.10", "--replicas=3"); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 3*time.Minute, "a Deployment rolled out by kubeparts' controllers", func() error {
		_, err := e.kubectl("rollout", "status", "deployment/web", "--timeout=10s")
		return err
	})
	framework.Eventually(t, 3*time.Minute, "kubectl top nodes through the chart's kubeparts-apiserver", func() error {
		out, err := e.kubectl("top", "nodes")
		if err != nil {
			return err
		}
		if !strings.Contains(out, clusterName+"-worker") {
			return fmt.Errorf("top: %s", out)
		}
		return nil
	})
}

// clusterConfig is config/kind/cluster.yaml, what users apply, with what this machine
// needs: the node image, no kindnetd (its image comes from a registry: containerd writes
// a bridge config from each node's range instead), the nftables kube-proxy, CoreDNS at
// the version built here, and the kubelet allowed on a cgroup v1 host.
func clusterConfig(t *testing.T, repo, image string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "config", "kind", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cluster map[string]any
	if err := yaml.Unmarshal(data, &cluster); err != nil {
		t.Fatal(err)
	}
	for _, n := range cluster["nodes"].([]any) {
		node := n.(map[string]any)
		node["image"] = image
		// Mounts name files relative to the repository's root, where users run kind.
		if mounts, ok := node["extraMounts"].([]any); ok {
			for _, m := range mounts {
				mount := m.(map[string]any)
				if p := mount["hostPath"].(string); !filepath.IsAbs(p) {
					mount["hostPath"] = filepath.Join(repo, p)
				}
			}
		}
	}
	cluster["networking"] = map[string]any{"disableDefaultCNI": true, "kubeProxyMode": "nftables", "podSubnet": "10.244.0.0/16"}
	cluster["kubeadmConfigPatches"] = []any{
		"kind: KubeletConfiguration\nfailCgroupV1: false\n",
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ndns:\n  imageTag: v1.15.0\n",
	}
	out, err := yaml.Marshal(cluster)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kind.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// routePodRanges routes each node's pod range to it on every other node, what kind's
// kindnetd does in clusters that can pull it (nodes share podman's network).
func routePodRanges(t *testing.T, e *env) {
	t.Helper()
	var nodes map[string][2]string
	framework.Eventually(t, 3*time.Minute, "every node with a pod range", func() error {
		out, err := e.kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}`)
		if err != nil {
			return err
		}
		nodes = map[string][2]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			if len(f) != 3 {
				return fmt.Errorf("node without a pod range or address yet: %q", l)
			}
			nodes[f[0]] = [2]string{f[1], f[2]}
		}
		return nil
	})
	for node := range nodes {
		for other, r := range nodes {
			if other != node {
				e.must(time.Minute, "podman", "exec", node, "ip", "route", "replace", r[0], "via", r[1])
			}
		}
	}
}
