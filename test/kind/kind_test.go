// Package kind runs kubeparts in a kind cluster, as users test Kubernetes extensions:
// kind on podman (these machines have no Docker engine), a node image built by
// hack/kind/node-image.sh from the pinned stock binaries, the images from `make image`
// loaded with `kind load image-archive`, the chart installed with helm. `make test-kind`
// runs it (root, podman); elsewhere it skips.
package kind

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	engine   string // podman or docker: what runs kind's nodes
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
	e := &env{t: t, repo: repo, bin: bin, kc: filepath.Join(t.TempDir(), "kubeconfig"), engine: "podman"}
	// A machine with a Docker engine runs kind on it, as kind does by default; these
	// machines have podman, with the settings hack/kind/containers.conf holds.
	if err := exec.Command("docker", "info").Run(); err == nil {
		e.engine = "docker"
	} else {
		e.extraEnv = []string{"KIND_EXPERIMENTAL_PROVIDER=podman", "CONTAINERS_CONF=" + filepath.Join(repo, "hack", "kind", "containers.conf")}
	}
	e.extraEnv = append(e.extraEnv, "ENGINE="+e.engine)
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
	cfg, nodes := clusterConfig(t, repo, image)
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
		if e.engine == "podman" {
			if out, err := e.run(time.Minute, "podman", "network", "rm", "kind"); err != nil && !strings.Contains(out, "not found") {
				t.Logf("podman network rm kind: %v", err)
			}
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
		if strings.Count(out, " Ready ") != nodes {
			return fmt.Errorf("nodes:\n%s", out)
		}
		return nil
	})
	installChart(t, e)
	nodeAgentOnWorker(t, e)
	joinedByAgent(t, e)
	swapScheduler(t, e)
	swapControllerManager(t, e)
	if os.Getenv("KUBEPARTS_KIND_UPSTREAM") != "" {
		upstreamSets(t, e)
	}
}

// upstreamSets runs upstream v1.36.3 e2e specs of the roles this cluster has swapped
// (the kubeparts controller manager and scheduler in charge, kubeparts-nodeagent on both
// workers, the chart's aggregated apiserver) with ginkgo in parallel, the suite's images
// built here (hack/e2e-upstream) and loaded with kind. KUBEPARTS_KIND_UPSTREAM=1 runs
// every set, a comma-separated list of set names those. `make test-kind-upstream` runs it:
// e2e.test alone takes ~10 minutes to build the first time, more than CI's budget has
// left, so CI runs make test-kind without it.
func upstreamSets(t *testing.T, e *env) {
	t.Helper()
	e2e := filepath.Join(e.bin, "e2e-upstream")
	start := time.Now()
	e.must(40*time.Minute, filepath.Join(e.repo, "hack", "e2e-upstream", "build.sh"))
	mod, err := e.run(time.Minute, "go", "list", "-C", filepath.Join(e.repo, "hack", "upstream", "e2e"), "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	images := filepath.Join(e2e, "images")
	e.must(10*time.Minute, "go", "run", "-C", e.repo, "./hack/e2e-upstream/images", "-agnhost", filepath.Join(e2e, "agnhost"), "-pause", filepath.Join(e.bin, "pause"),
		"-coredns", filepath.Join(e.bin, "coredns"), "-regression", filepath.Join(e2e, "regression-issue-74839"),
		"-porter-dir", filepath.Join(strings.TrimSpace(mod), "test", "images", "agnhost", "porter"), "-out", images)
	archives, _ := filepath.Glob(filepath.Join(images, "*.tar"))
	for _, a := range archives {
		if _, err := e.kind(5*time.Minute, "load", "image-archive", a, "--name", clusterName); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("e2e.test, its images built and %d loaded in %s", len(archives), time.Since(start).Round(time.Second))
	// The scheduler back to kubeparts (swapScheduler ended on stock).
	if out, err := e.run(5*time.Minute, e.engine, "exec", clusterName+"-control-plane", "kubeparts", "swap", "scheduler", "--to", "kubeparts"); err != nil {
		t.Fatalf("swap scheduler to kubeparts: %v\n%s", err, out)
	}
	for _, set := range []struct {
		name, focus string
		serial      bool // the suite's [Serial] specs, one at a time
	}{
		{"controller-manager", `\[sig-apps\] (Deployment|ReplicaSet|ReplicationController|DaemonSet|Job|CronJob|ControllerRevision|DisruptionController).*\[Conformance\]`, false},
		{"nodeagent", `\[sig-node\] (Pods|Container Lifecycle Hook|InitContainer|Container Runtime|Downward API|Variable Expansion|Probing container).*\[Conformance\]`, false},
		{"scheduler", `\[sig-scheduling\] (SchedulerPredicates|SchedulerPreemption|LimitRange).*\[Conformance\]`, false},
		{"scheduler-serial", `\[sig-scheduling\] SchedulerPredicates.*\[Conformance\]`, true},
	} {
		// KUBEPARTS_KIND_UPSTREAM=1 runs every set; a comma-separated list of names, those.
		if only := os.Getenv("KUBEPARTS_KIND_UPSTREAM"); only != "1" && !slices.Contains(strings.Split(only, ","), set.name) {
			continue
		}
		report := filepath.Join(t.TempDir(), set.name)
		skip := `\[Serial\]|\[Disruptive\]|\[Flaky\]|\[Slow\]|\[Feature:`
		parallel := []string{"-p", "--procs=2"}
		if set.serial {
			skip, parallel = `\[Disruptive\]|\[Flaky\]|\[Slow\]|\[Feature:`, nil
		}
		start := time.Now()
		args := append(parallel, "--focus="+set.focus, "--skip="+skip, "--timeout=35m",
			"--no-color", "--silence-skips", filepath.Join(e2e, "e2e.test"), "--",
			"--provider=skeleton", "--kubeconfig="+e.kc, "--kubectl-path="+filepath.Join(e.bin, "kubectl"),
			"--num-nodes=2", "--node-os-distro=debian", "--allowed-not-ready-nodes=0", "--report-dir="+report, "--disable-log-dump")
		out, err := e.run(40*time.Minute, filepath.Join(e2e, "ginkgo"), args...)
		summary, serr := e.run(time.Minute, "python3", filepath.Join(e.repo, "hack", "e2e-upstream", "summary.py"), report, set.name)
		t.Logf("upstream %s set in %s:\n%s", set.name, time.Since(start).Round(time.Second), summary)
		if err != nil || serr != nil {
			tailed := out
			if len(tailed) > 4000 {
				tailed = tailed[len(tailed)-4000:]
			}
			t.Errorf("upstream %s set: %v %v\n%s", set.name, err, serr, tailed)
		}
	}
}

// swapScheduler runs `kubeparts swap` on the control-plane node, as an operator would
// on a kubeadm host: the scheduler to kubeparts (a new holder of the stock Lease, pods
// still scheduled), a swap whose new piece cannot start (rolled back, stock in charge
// again), and back to stock.
func swapScheduler(t *testing.T, e *env) {
	t.Helper()
	cp := clusterName + "-control-plane"
	e.must(time.Minute, e.engine, "cp", filepath.Join(e.bin, "kubeparts"), cp+":/usr/local/bin/kubeparts")
	// As the stock scheduler's identity, kubeparts-scheduler also reads PodGroups
	// (config/rbac/scheduler.yaml binds the same for kubeadm hosts).
	if _, err := e.kubectl("create", "clusterrolebinding", "kubeparts-scheduler-as-stock", "--clusterrole=kubeparts-scheduler", "--user=system:kube-scheduler"); err != nil {
		t.Fatal(err)
	}
	swap := func(args ...string) (string, error) {
		return e.run(5*time.Minute, e.engine, append([]string{"exec", cp, "kubeparts", "swap"}, args...)...)
	}
	scheduled := func(name string) {
		t.Helper()
		if _, err := e.kubectl("run", name, "--image=registry.k8s.io/pause:3.10", "--restart=Never"); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, 2*time.Minute, "pod "+name+" scheduled", func() error {
			out, err := e.kubectl("get", "pod", name, "-o", "jsonpath={.spec.nodeName}")
			if err != nil || strings.TrimSpace(out) == "" {
				return fmt.Errorf("not bound yet (%v)", err)
			}
			return nil
		})
	}

	if out, err := swap("scheduler", "--to", "kubeparts", "--dry-run"); err != nil || !strings.Contains(out, "+++ /dev/null") {
		t.Fatalf("--dry-run: %v\n%s", err, out)
	}
	start := time.Now()
	if out, err := swap("scheduler", "--to", "kubeparts"); err != nil {
		t.Fatalf("swap to kubeparts: %v\n%s", err, out)
	}
	t.Logf("swap scheduler to kubeparts in %s", time.Since(start).Round(time.Second))
	mirrorPodGone(t, e, "kube-scheduler-"+cp)
	scheduled("by-kubeparts-scheduler")
	if out, err := swap("scheduler", "--to", "kubeparts"); err != nil || !strings.Contains(out, "already runs kubeparts") {
		t.Errorf("a second swap to kubeparts: %v\n%s", err, out)
	}

	// Back to stock, then a swap whose image does not exist: rolled back.
	if out, err := swap("scheduler", "--to", "stock"); err != nil {
		t.Fatalf("swap back to stock: %v\n%s", err, out)
	}
	out, err := swap("scheduler", "--to", "kubeparts", "--image", "docker.io/kubeparts/no-such-image:dev", "--timeout", "40s")
	if err == nil || !strings.Contains(out, "rolled back: kube-scheduler is in charge again") {
		t.Fatalf("a swap to an image that does not exist: %v\n%s", err, out)
	}
	if out, err := e.run(time.Minute, e.engine, "exec", cp, "ls", "/etc/kubernetes/manifests"); err != nil || !strings.Contains(out, "kube-scheduler.yaml") || strings.Contains(out, "kubeparts-scheduler.yaml") {
		t.Errorf("manifests after the rollback: %q %v", out, err)
	}
	scheduled("by-stock-scheduler")
}

// swapControllerManager takes the control-plane node's controller manager back to stock
// and to kubeparts again with `kubeparts swap`. config/kind/cluster.yaml mounted
// kubeparts-controller-manager.yaml into the manifests: swap refuses to touch a mount
// point and says so; once an operator has made it a plain file (as the error says), the
// swap goes both ways, Deployments rolling out under each manager.
func swapControllerManager(t *testing.T, e *env) {
	t.Helper()
	cp := clusterName + "-control-plane"
	ours := "/etc/kubernetes/manifests/kubeparts-controller-manager.yaml"
	swap := func(args ...string) (string, error) {
		return e.run(5*time.Minute, e.engine, append([]string{"exec", cp, "kubeparts", "swap", "controller-manager"}, args...)...)
	}
	rollsOut := func(name string) {
		t.Helper()
		if _, err := e.kubectl("create", "deployment", name, "--image=registry.k8s.io/pause:3.10", "--replicas=2"); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, 3*time.Minute, "Deployment "+name+" rolled out", func() error {
			_, err := e.kubectl("rollout", "status", "deployment/"+name, "--timeout=10s")
			return err
		})
	}
	if out, err := swap("--to", "stock"); err == nil || !strings.Contains(out, ours+" is a mount point") {
		t.Fatalf("a swap of kind's mounted manifest: %v\n%s", err, out)
	}
	e.must(time.Minute, e.engine, "exec", cp, "sh", "-c", "cp "+ours+" /tmp/kpcm.yaml && umount "+ours+" && mv /tmp/kpcm.yaml "+ours)

	start := time.Now()
	if out, err := swap("--to", "stock"); err != nil {
		t.Fatalf("swap controller-manager to stock: %v\n%s", err, out)
	}
	t.Logf("swap controller-manager to stock in %s", time.Since(start).Round(time.Second))
	mirrorPodGone(t, e, "kubeparts-controller-manager-"+cp)
	rollsOut("by-stock-controllers")

	// Back to kubeparts, on an identity of its own as config/kubeadm has it: the
	// kubeconfig and RBAC the swap asks for first.
	if out, err := swap("--to", "kubeparts"); err == nil || !strings.Contains(out, "kubeconfig is missing") {
		t.Fatalf("a swap without the new piece's kubeconfig: %v\n%s", err, out)
	}
	e.must(time.Minute, e.engine, "exec", cp, "sh", "-c", "kubeadm kubeconfig user --config /kind/kubeadm.conf --client-name kubeparts-controller-manager > /etc/kubernetes/kubeparts-controller-manager.conf")
	if _, err := e.kubectl("apply", "-f", filepath.Join(e.repo, "config", "rbac", "controller-manager.yaml")); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if out, err := swap("--to", "kubeparts"); err != nil {
		t.Fatalf("swap controller-manager to kubeparts: %v\n%s", err, out)
	}
	t.Logf("swap controller-manager to kubeparts in %s", time.Since(start).Round(time.Second))
	if out, err := e.run(time.Minute, e.engine, "exec", cp, "grep", "-c", "--", "-deployment-controller", "/etc/kubernetes/manifests/kube-controller-manager.yaml"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("kube-controller-manager's --controllers after the swap leaves the deployment controller on: %q %v", out, err)
	}
	rollsOut("by-kubeparts-controllers")
}

// mirrorPodGone waits until the kubelet has removed the mirror pod of a static pod whose
// manifest a swap took away (it does so in its own time).
func mirrorPodGone(t *testing.T, e *env, pod string) {
	t.Helper()
	framework.Eventually(t, time.Minute, "mirror pod "+pod+" gone", func() error {
		if out, err := e.kubectl("-n", "kube-system", "get", "pod", pod, "--ignore-not-found", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})
}

// nodeAgentOnWorker puts kubeparts-nodeagent in the kubelet's place on the worker, as an
// operator would on a kubeadm node: the systemd drop-in config/kind ships into the same
// unit, kubeadm's flags and /var/lib/kubelet/config.yaml unchanged (kind's: the systemd
// cgroup driver, a cgroup root), the credentials kubeadm join gave the kubelet. The node
// stays Ready and runs pods as the kubelet would.
func nodeAgentOnWorker(t *testing.T, e *env) {
	t.Helper()
	worker := clusterName + "-worker"
	e.must(time.Minute, e.engine, "cp", filepath.Join(e.bin, "kubeparts-nodeagent"), worker+":/usr/local/bin/kubeparts-nodeagent")
	e.must(time.Minute, e.engine, "cp", filepath.Join(e.repo, "config", "kind", "kubelet-kubeparts-nodeagent.conf"), worker+":/etc/systemd/system/kubelet.service.d/20-kubeparts-nodeagent.conf")
	e.must(time.Minute, e.engine, "exec", worker, "sh", "-c", "systemctl daemon-reload && systemctl restart kubelet")
	agentServesNode(t, e, worker, time.Now())
	podOnAgent(t, e, worker, "on-agent")
}

// joinedByAgent checks the second worker of config/kind/cluster.yaml, which kind's
// `kubeadm join` started with kubeparts-nodeagent in the kubelet's unit from the first
// boot: its client certificate came from a kube-apiserver-client-kubelet CSR signed for
// the node (TLS bootstrap with kubeadm's token), and it runs pods as the first does.
func joinedByAgent(t *testing.T, e *env) {
	t.Helper()
	worker := clusterName + "-worker2"
	agentServesNode(t, e, worker, time.Time{})
	out, err := e.kubectl("get", "csr", "-o", `jsonpath={range .items[*]}{.spec.signerName} {.spec.username} {.status.conditions[0].type} {.status.certificate}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	signed := false
	for _, l := range strings.Split(out, "\n") {
		// kubeadm's bootstrap token authenticates as system:bootstrap:<token id>.
		if f := strings.Fields(l); len(f) == 4 && f[0] == "kubernetes.io/kube-apiserver-client-kubelet" && strings.HasPrefix(f[1], "system:bootstrap:") && f[2] == "Approved" {
			signed = true
		}
	}
	if !signed {
		t.Errorf("no approved and signed kube-apiserver-client-kubelet CSR from a bootstrap token:\n%s", out)
	}
	pemData, err := e.run(time.Minute, e.engine, "exec", worker, "cat", "/var/lib/kubelet/pki/kubelet-client-current.pem")
	if err != nil {
		t.Fatal(err)
	}
	if cert := firstCertificate(pemData); cert == nil || cert.Subject.CommonName != "system:node:"+worker {
		t.Errorf("the agent's client certificate %v, want one for system:node:%s", cert, worker)
	}
	podOnAgent(t, e, worker, "on-joined-agent")
}

func firstCertificate(data string) *x509.Certificate {
	for rest := []byte(data); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil
		}
		if b.Type == "CERTIFICATE" {
			cert, _ := x509.ParseCertificate(b.Bytes)
			return cert
		}
	}
}

// agentServesNode waits until the node's kubelet unit runs kubeparts-nodeagent and the
// Node is Ready with a heartbeat since since.
func agentServesNode(t *testing.T, e *env, node string, since time.Time) {
	t.Helper()
	framework.Eventually(t, 3*time.Minute, "kubeparts-nodeagent running as "+node+"'s kubelet, the node Ready", func() error {
		if out, err := e.run(time.Minute, e.engine, "exec", node, "systemctl", "show", "kubelet", "-p", "ActiveState", "-p", "ExecStart"); err != nil || !strings.Contains(out, "kubeparts-nodeagent") || !strings.Contains(out, "ActiveState=active") {
			logs, _ := e.run(time.Minute, e.engine, "exec", node, "journalctl", "-u", "kubelet", "-n", "5", "--no-pager")
			return fmt.Errorf("kubelet unit: %s %v\n%s", out, err, logs)
		}
		out, err := e.kubectl("get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}`)
		if err != nil {
			return err
		}
		f := strings.Fields(out)
		if len(f) != 2 || f[0] != "True" {
			return fmt.Errorf("Ready: %q", out)
		}
		if beat, err := time.Parse(time.RFC3339, f[1]); err != nil || beat.Before(since.Add(-time.Second)) {
			return fmt.Errorf("no heartbeat since the restart (%q)", f[1])
		}
		return nil
	})
}

// podOnAgent runs a pod on the agent's node: Ready, in the pod slice systemd names as the
// kubelet's would, its logs from the agent's kubelet API.
func podOnAgent(t *testing.T, e *env, node, name string) {
	t.Helper()
	pod := `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `, namespace: default}
spec:
  nodeName: ` + node + `
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
    resources: {requests: {cpu: 10m}}
`
	manifest := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(manifest, []byte(pod), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kubectl("apply", "-f", manifest); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 2*time.Minute, "pod "+name+" Ready under kubeparts-nodeagent on "+node, func() error {
		_, err := e.kubectl("wait", "--for=condition=Ready", "pod/"+name, "--timeout=5s")
		return err
	})
	uid, err := e.kubectl("get", "pod", name, "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		t.Fatal(err)
	}
	// kind's cgroupRoot is /kubelet: the pod's slice is under kubelet-kubepods.
	slice := "kubelet-kubepods-burstable-pod" + strings.ReplaceAll(strings.TrimSpace(uid), "-", "_") + ".slice"
	if out, err := e.run(time.Minute, e.engine, "exec", node, "sh", "-c", "find /sys/fs/cgroup -maxdepth 6 -type d -name "+slice+" | head -3"); err != nil || !strings.Contains(out, "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"+slice) {
		t.Errorf("the pod's cgroup %s under kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice: %q %v", slice, out, err)
	}
	if _, err := e.kubectl("logs", name); err != nil {
		t.Errorf("kubectl logs through the agent: %v", err)
	}
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
func clusterConfig(t *testing.T, repo, image string) (string, int) {
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
	return path, len(cluster["nodes"].([]any))
}

// routePodRanges routes each node's pod range to it on every other node, what kind's
// kindnetd does in clusters that can pull it (nodes share kind's network).
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
				e.must(time.Minute, e.engine, "exec", node, "ip", "route", "replace", r[0], "via", r[1])
			}
		}
	}
}
