package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeparts/kubeparts/internal/localcluster"
)

const smokePod = `apiVersion: v1
kind: Pod
metadata:
  name: smoke
  namespace: e2e
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: pause
    image: registry.k8s.io/pause:3.10
    imagePullPolicy: Never
`

const agentDaemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: rollout
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: pause
        image: registry.k8s.io/pause:3.10
`

// hpaManifest scales a one-pod Deployment on CPU: its status shows a current
// utilization only if metrics.k8s.io answers.
const hpaManifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: hpa-web, namespace: e2e}
spec:
  replicas: 1
  selector: {matchLabels: {app: hpa-web}}
  template:
    metadata: {labels: {app: hpa-web}}
    spec:
      containers:
      - {name: c, image: registry.k8s.io/pause:3.10, imagePullPolicy: Never, resources: {requests: {cpu: 10m}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: hpa-web, namespace: e2e}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: hpa-web}
  minReplicas: 1
  maxReplicas: 2
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
`

// gangPods are the two members of PodGroup e2e/gang (minMember 2).
const gangPods = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: gang-0, namespace: e2e, labels: {scheduling.kubeparts.dev/pod-group: gang}}
  spec:
    containers: [{name: c, image: registry.k8s.io/pause:3.10, imagePullPolicy: Never}]
- apiVersion: v1
  kind: Pod
  metadata: {name: gang-1, namespace: e2e, labels: {scheduling.kubeparts.dev/pod-group: gang}}
  spec:
    containers: [{name: c, image: registry.k8s.io/pause:3.10, imagePullPolicy: Never}]
`

// imageProbePod runs the built image with a bad flag: its log proves the binary runs.
const imageProbePod = `apiVersion: v1
kind: Pod
metadata:
  name: image-probe
  namespace: e2e
spec:
  restartPolicy: Never
  containers:
  - name: manager
    image: kubeparts/kubeparts-controller-manager:dev
    imagePullPolicy: Never
    args: ["--controllers=bogus"]
`

const webReplicaSet = `apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
  namespace: e2e
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: pause
        image: registry.k8s.io/pause:3.10
        imagePullPolicy: Never
`

func tempDataDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kubeparts-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// podRunning passes once the smoke pod runs with a pod IP and is Ready, with its
// container started at or after since: a pod kept from before a restart still shows the
// old run's status until the new kubelet reports.
func podRunning(t *testing.T, bin, kc string, since time.Time) func() error {
	return func() error {
		out, err := kubectl(t, bin, kc, "-n", "e2e", "get", "pod", "smoke", "-o",
			`jsonpath={.status.phase} {.status.podIP} {.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[0].state.running.startedAt}`)
		if err != nil {
			return err
		}
		f := strings.Fields(out)
		if len(f) != 4 || f[0] != "Running" || net.ParseIP(f[1]) == nil || f[2] != "True" {
			return &unexpected{out}
		}
		started, err := time.Parse(time.RFC3339, f[3])
		if err != nil || started.Before(since.Truncate(time.Second)) {
			return &unexpected{out}
		}
		return nil
	}
}

type unexpected struct{ got string }

func (u *unexpected) Error() string { return "got " + u.got }

// TestUpLifecycle walks a cluster through what an operator does with it: start, use it
// with kubectl, run a pod on containerd, stop with Ctrl-C, restart on the same data,
// survive a killed `up`, and start fresh; nothing may be left running after each stop.
func TestUpLifecycle(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	dataDir := tempDataDir(t)
	const portBase = "17443"
	// Pod network namespaces of this test's pods must not outlive it, not
	// even those of the `up` killed below.
	netnsBefore := namespacesWith(t, "cni-")

	up := startUp(t, bin, "--data-dir", dataDir, "--port-base", portBase)
	kc := up.waitReady(t, 4*time.Minute)
	if want := filepath.Join(dataDir, "admin.kubeconfig"); kc != want {
		t.Errorf("export line names %s, want %s", kc, want)
	}
	if out, err := kubectl(t, bin, kc, "get", "--raw", "/readyz"); err != nil || out != "ok" {
		t.Fatalf("/readyz = %q, %v", out, err)
	}
	if out, err := exec.Command(filepath.Join(bin, "kubeparts"), "status", "--data-dir", dataDir).CombinedOutput(); err != nil || !strings.Contains(string(out), "is running") || !strings.Contains(string(out), "and ready") {
		t.Errorf("kubeparts status on a running cluster: %v: %s", err, out)
	}
	if out, err := kubectl(t, bin, kc, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); err != nil || out != "kubernetes-admin" {
		t.Errorf("admin identity = %q, %v; want the x509 user kubernetes-admin", out, err)
	}
	if _, err := kubectl(t, bin, kc, "create", "namespace", "e2e"); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl(t, bin, kc, "-n", "e2e", "create", "configmap", "survivor", "--from-literal=key=value"); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dataDir, "smoke.yaml")
	if err := os.WriteFile(manifest, []byte(smokePod), 0o644); err != nil {
		t.Fatal(err)
	}
	// The namespace's default ServiceAccount comes from the controller manager a moment
	// after the namespace; admission refuses pods until then.
	eventually(t, 60*time.Second, "create smoke pod", func() error {
		_, err := kubectl(t, bin, kc, "apply", "-f", manifest)
		return err
	})
	eventually(t, 90*time.Second, "smoke pod running on containerd with a pod IP", podRunning(t, bin, kc, time.Time{}))
	// kubectl logs goes kube-apiserver -> kubelet over TLS with the node's serving cert.
	if _, err := kubectl(t, bin, kc, "-n", "e2e", "logs", "smoke"); err != nil {
		t.Errorf("kubectl logs through the kubelet: %v", err)
	}

	t.Run("kubectl top and components through kubeparts-apiserver", func(t *testing.T) {
		// metrics.k8s.io needs two scrapes of the kubelet (10 s apart here).
		eventually(t, 90*time.Second, "kubectl top pods", func() error {
			out, err := kubectl(t, bin, kc, "-n", "e2e", "top", "pods", "smoke", "--no-headers")
			if err != nil || !strings.HasPrefix(out, "smoke") {
				return &unexpected{out}
			}
			return nil
		})
		if out, err := kubectl(t, bin, kc, "top", "nodes", "--no-headers"); err != nil || strings.TrimSpace(out) == "" {
			t.Errorf("kubectl top nodes: %v %s", err, out)
		}
		out, err := kubectl(t, bin, kc, "get", "components", "--no-headers")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"kubeparts-scheduler", "kubeparts-controller-manager", "kubeparts-apiserver", "etcd", "kube-apiserver", "deployment-controller", "kubeparts-cloud-controller-manager"} {
			found := false
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				found = found || len(f) >= 4 && f[0] == want && f[3] == "Healthy"
			}
			if !found {
				t.Errorf("component %s not listed Healthy:\n%s", want, out)
			}
		}
		if out, err := kubectl(t, bin, kc, "get", "etcdmembers", "--no-headers"); err != nil || !strings.Contains(out, "true") {
			t.Errorf("etcdmembers: %v %s, want one leader", err, out)
		}
		// The stock HPA controller reads pod CPU from metrics.k8s.io.
		hpa := filepath.Join(dataDir, "hpa.yaml")
		if err := os.WriteFile(hpa, []byte(hpaManifest), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := kubectl(t, bin, kc, "apply", "-f", hpa); err != nil {
			t.Fatalf("hpa: %v\n%s", err, out)
		}
		eventually(t, 150*time.Second, "HPA reads CPU utilization", func() error {
			out, err := kubectl(t, bin, kc, "-n", "e2e", "get", "hpa", "hpa-web", "-o", "jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}")
			if err != nil || strings.TrimSpace(out) == "" {
				return &unexpected{out}
			}
			return nil
		})
		// Its pods share the namespace with the subtests below: remove them.
		if out, err := kubectl(t, bin, kc, "delete", "--wait=true", "-f", hpa); err != nil {
			t.Errorf("delete hpa-web: %v %s", err, out)
		}
	})

	t.Run("ReplicaSets are run by kubeparts-controller-manager", func(t *testing.T) {
		rsManifest := filepath.Join(dataDir, "rs.yaml")
		if err := os.WriteFile(rsManifest, []byte(webReplicaSet), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := kubectl(t, bin, kc, "apply", "-f", rsManifest); err != nil {
			t.Fatal(err)
		}
		eventually(t, 90*time.Second, "2 ready replicas", func() error {
			out, err := kubectl(t, bin, kc, "-n", "e2e", "get", "rs", "web", "-o", "jsonpath={.status.replicas}/{.status.readyReplicas}/{.status.availableReplicas}")
			if err != nil || out != "2/2/2" {
				return &unexpected{out}
			}
			return nil
		})
		// The pods' creator, from managedFields: ours, not the stock manager's.
		out, err := kubectl(t, bin, kc, "-n", "e2e", "get", "pods", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.metadata.managedFields[*].manager}{"\n"}{end}`)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for _, l := range lines {
			if !strings.Contains(l, "kubeparts-controller-manager") || strings.Contains(l, "kube-controller-manager") {
				t.Errorf("pod managers %q: want kubeparts-controller-manager, never kube-controller-manager", l)
			}
		}
		if err != nil || len(lines) != 2 {
			t.Errorf("managers of the ReplicaSet's pods: %q, %v", out, err)
		}
		if _, err := kubectl(t, bin, kc, "-n", "e2e", "scale", "rs", "web", "--replicas=1"); err != nil {
			t.Fatal(err)
		}
		var survivor string
		eventually(t, 60*time.Second, "scaled to 1", func() error {
			out, err := kubectl(t, bin, kc, "-n", "e2e", "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}")
			if err != nil || len(strings.Fields(out)) != 1 {
				return &unexpected{out}
			}
			survivor = out
			return nil
		})
		// Orphan the pod, recreate the ReplicaSet: it adopts the orphan and adds one.
		if _, err := kubectl(t, bin, kc, "-n", "e2e", "delete", "rs", "web", "--cascade=orphan", "--wait=true"); err != nil {
			t.Fatal(err)
		}
		if _, err := kubectl(t, bin, kc, "apply", "-f", rsManifest); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "orphan adopted", func() error {
			uid, err := kubectl(t, bin, kc, "-n", "e2e", "get", "rs", "web", "-o", "jsonpath={.metadata.uid}")
			if err != nil {
				return err
			}
			owner, err := kubectl(t, bin, kc, "-n", "e2e", "get", "pod", survivor, "-o", "jsonpath={.metadata.ownerReferences[0].uid}")
			if err != nil || owner != uid {
				return &unexpected{"owner " + owner + " of " + survivor}
			}
			out, _ := kubectl(t, bin, kc, "-n", "e2e", "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}")
			if len(strings.Fields(out)) != 2 {
				return &unexpected{out}
			}
			return nil
		})
		// The per-controller counters on the authenticated /metrics endpoint.
		if got := scrape(t, bin, kc, 17443+10); !strings.Contains(got, `kubeparts_controller_pods_created_total{controller="replicaset-controller"}`) || !strings.Contains(got, "workqueue_depth") {
			t.Errorf("kubeparts-controller-manager /metrics lacks its counters:\n%.2000s", got)
		}
	})

	t.Run("kubectl rollout drives kubeparts' deployment-controller", func(t *testing.T) {
		k := func(args ...string) string {
			t.Helper()
			out, err := kubectl(t, bin, kc, append([]string{"-n", "rollout"}, args...)...)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		if _, err := kubectl(t, bin, kc, "create", "namespace", "rollout"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "create deployment", func() error {
			_, err := kubectl(t, bin, kc, "-n", "rollout", "create", "deployment", "web", "--image=registry.k8s.io/pause:3.10", "--replicas=3")
			return err
		})
		k("rollout", "status", "deploy/web", "--timeout=90s")
		k("set", "env", "deploy/web", "V=2")
		k("rollout", "status", "deploy/web", "--timeout=90s")
		if h := k("rollout", "history", "deploy/web"); !strings.Contains(h, "1 ") || !strings.Contains(h, "2 ") {
			t.Errorf("rollout history lacks revisions 1 and 2:\n%s", h)
		}
		k("rollout", "undo", "deploy/web")
		k("rollout", "status", "deploy/web", "--timeout=90s")
		if rev := k("get", "deploy/web", "-o", `jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}`); rev != "3" {
			t.Errorf("revision after undo = %q, want 3", rev)
		}
		if n := len(strings.Fields(k("get", "rs", "-o", "name"))); n != 2 {
			t.Errorf("%d ReplicaSets after undo, want 2 (undo reuses the first)", n)
		}
		k("rollout", "pause", "deploy/web")
		k("set", "env", "deploy/web", "V=3")
		eventually(t, 30*time.Second, "paused change observed", func() error {
			out := k("get", "deploy/web", "-o", `jsonpath={.metadata.generation}/{.status.observedGeneration}/{.status.conditions[?(@.type=="Progressing")].reason}`)
			f := strings.Split(out, "/")
			if len(f) != 3 || f[0] != f[1] || f[2] != "DeploymentPaused" {
				return &unexpected{out}
			}
			return nil
		})
		if n := len(strings.Fields(k("get", "rs", "-o", "name"))); n != 2 {
			t.Errorf("%d ReplicaSets while paused, want 2", n)
		}
		k("rollout", "resume", "deploy/web")
		k("rollout", "status", "deploy/web", "--timeout=90s")
		k("scale", "deploy/web", "--replicas=1")
		k("rollout", "status", "deploy/web", "--timeout=90s")
		// rollout status does not wait for a scale-down's pods to go (with stock's
		// controller neither: the status that observes the new generation still
		// counts them), so poll for the count.
		eventually(t, 60*time.Second, "scaled to 1", func() error {
			if out := k("get", "deploy/web", "-o", "jsonpath={.status.replicas}/{.status.availableReplicas}"); out != "1/1" {
				return &unexpected{out}
			}
			return nil
		})
		// A DaemonSet: one pod on the node, rolled out and back with kubectl.
		ds := filepath.Join(dataDir, "ds.yaml")
		if err := os.WriteFile(ds, []byte(agentDaemonSet), 0o644); err != nil {
			t.Fatal(err)
		}
		k("apply", "-f", ds)
		k("rollout", "status", "ds/agent", "--timeout=90s")
		k("set", "env", "ds/agent", "V=2")
		k("rollout", "status", "ds/agent", "--timeout=90s")
		k("rollout", "undo", "ds/agent")
		k("rollout", "status", "ds/agent", "--timeout=90s")
		if out := k("get", "ds/agent", "-o", "jsonpath={.status.desiredNumberScheduled}/{.status.numberReady}/{.status.updatedNumberScheduled}"); out != "1/1/1" {
			t.Errorf("DaemonSet status after undo: %s", out)
		}
		// The replaced pod may still be terminating for a moment.
		eventually(t, 60*time.Second, "daemon back at the first template", func() error {
			out := k("get", "pods", "-l", "app=agent", "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.containers[0].env}{\"\\n\"}{end}")
			if lines := strings.Fields(out); len(lines) != 1 || strings.Contains(out, "V") {
				return &unexpected{out}
			}
			return nil
		})
		if _, err := kubectl(t, bin, kc, "delete", "namespace", "rollout", "--timeout=90s"); err != nil {
			t.Errorf("delete namespace: %v", err)
		}
	})

	t.Run("100 namespaces deleted at once, 90% gone within 150s", func(t *testing.T) {
		// Upstream's namespace e2e ("should delete fast enough (90 percent of 100
		// namespaces in 150 seconds)"), through kubectl: the namespace controller,
		// on its own client and budget, as kube-system/namespace-controller.
		var docs []string
		for i := range 100 {
			docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: nsdel-%d}\n", i))
		}
		nsManifest := filepath.Join(dataDir, "namespaces.yaml")
		if err := os.WriteFile(nsManifest, []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := kubectl(t, bin, kc, "apply", "-f", nsManifest); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		began := time.Now()
		if out, err := kubectl(t, bin, kc, "delete", "--wait=false", "-f", nsManifest); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		left := func() int {
			out, _ := kubectl(t, bin, kc, "get", "namespaces", "-o", "name")
			return strings.Count(out, "namespace/nsdel-")
		}
		eventually(t, 150*time.Second, "90 of 100 namespaces gone", func() error {
			if n := left(); n > 10 {
				return fmt.Errorf("%d left", n)
			}
			return nil
		})
		t.Logf("90%% of 100 namespaces gone after %.1fs", time.Since(began).Seconds())
		eventually(t, 60*time.Second, "all 100 gone", func() error {
			if n := left(); n > 0 {
				return fmt.Errorf("%d left", n)
			}
			return nil
		})
		// Under its own ServiceAccount, as kubeadm runs the stock manager.
		if out, err := kubectl(t, bin, kc, "-n", "kube-system", "get", "serviceaccount", "namespace-controller", "deployment-controller", "replicaset-controller", "daemon-set-controller", "node-controller", "podgroup-controller", "-o", "name"); err != nil || strings.Count(out, "serviceaccount/") != 6 {
			t.Errorf("the controllers' ServiceAccounts: %v %s", err, out)
		}
	})

	t.Run("shipped manifests and image", func(t *testing.T) {
		// config/default validates against the real apiserver.
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{"default", "scheduler"} {
			if out, err := kubectl(t, bin, kc, "apply", "--dry-run=server", "-k", filepath.Join(root, "config", dir)); err != nil {
				t.Fatalf("config/%s: %v\n%s", dir, err, out)
			}
		}
		// The README's kubeadm lines, as written (paths from the repository's root).
		for _, block := range []string{"kubeadm-controller-manager", "kubeadm-scheduler"} {
			for _, line := range readmeKubectl(t, block) {
				args := strings.Fields(line)
				for i, a := range args {
					if strings.HasPrefix(a, "config/") {
						args[i] = filepath.Join(root, a)
					}
				}
				if out, err := kubectl(t, bin, kc, append(args, "--dry-run=server")...); err != nil {
					t.Errorf("README %s: kubectl %s: %v\n%s", block, line, err, out)
				}
			}
		}
		// config/apiserver needs its certificates first (hack/apiserver-certs); a copy
		// keeps them out of the tree.
		apicfg := filepath.Join(t.TempDir(), "apiserver")
		if out, err := exec.Command("cp", "-r", filepath.Join(root, "config", "apiserver"), apicfg).CombinedOutput(); err != nil {
			t.Fatalf("copy config/apiserver: %v %s", err, out)
		}
		certs := exec.Command("go", "run", "./hack/apiserver-certs", filepath.Join(apicfg, "certs"))
		certs.Dir = root
		if out, err := certs.CombinedOutput(); err != nil {
			t.Fatalf("apiserver-certs: %v\n%s", err, out)
		}
		if out, err := kubectl(t, bin, kc, "apply", "--dry-run=server", "-k", apicfg); err != nil || !strings.Contains(out, "apiservice.apiregistration.k8s.io/v1beta1.metrics.k8s.io") {
			t.Fatalf("config/apiserver: %v\n%s", err, out)
		}
		// The PodGroup CRD is installed by up: a gang with minMember 0 is refused, a good
		// one gets its status (Pending, no pods yet) from the podgroup-controller.
		for name, min := range map[string]int{"bad": 0, "gang": 2} {
			pg := filepath.Join(dataDir, "pg-"+name+".yaml")
			doc := fmt.Sprintf("apiVersion: scheduling.kubeparts.dev/v1alpha1\nkind: PodGroup\nmetadata: {name: %s, namespace: e2e}\nspec: {minMember: %d}\n", name, min)
			if err := os.WriteFile(pg, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := kubectl(t, bin, kc, "apply", "-f", pg)
			if min == 0 && (err == nil || !strings.Contains(out, "should be greater than or equal to 1")) {
				t.Errorf("PodGroup with minMember 0: %v %s", err, out)
			}
			if min > 0 && err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 30*time.Second, "PodGroup status", func() error {
			out, err := kubectl(t, bin, kc, "-n", "e2e", "get", "pg", "gang", "--no-headers")
			if err != nil || !strings.Contains(out, "Pending") {
				return &unexpected{out}
			}
			return nil
		})
		// Its two pods go through kubeparts-scheduler's gang permit together and run on
		// containerd; the controller reports the group Running.
		gang := filepath.Join(dataDir, "gang-pods.yaml")
		if err := os.WriteFile(gang, []byte(gangPods), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := kubectl(t, bin, kc, "apply", "-f", gang); err != nil {
			t.Fatalf("gang pods: %v\n%s", err, out)
		}
		eventually(t, 90*time.Second, "gang running", func() error {
			out, err := kubectl(t, bin, kc, "-n", "e2e", "get", "pg", "gang", "-o", "jsonpath={.status.phase}/{.status.running}")
			if err != nil || out != "Running/2" {
				return &unexpected{out}
			}
			return nil
		})
		// The image `make image` builds loads into containerd and runs our binary.
		archive := filepath.Join(t.TempDir(), "cm.tar")
		build := exec.Command("go", "run", "./hack/images/build", "--binary", filepath.Join(bin, "kubeparts-controller-manager"),
			"--name", "kubeparts/kubeparts-controller-manager:dev", "--out", archive)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("image build: %v\n%s", err, out)
		}
		l, _ := localcluster.LayoutFor(dataDir)
		imp := exec.Command("ctr", "--address", filepath.Join(l.RunDir, "containerd.sock"), "--namespace", "k8s.io", "images", "import", archive)
		if out, err := imp.CombinedOutput(); err != nil {
			t.Fatalf("ctr import: %v\n%s", err, out)
		}
		pod := filepath.Join(dataDir, "cm-pod.yaml")
		if err := os.WriteFile(pod, []byte(imageProbePod), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := kubectl(t, bin, kc, "apply", "-f", pod); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "the image runs kubeparts-controller-manager", func() error {
			out, err := kubectl(t, bin, kc, "-n", "e2e", "logs", "image-probe")
			if err != nil || !strings.Contains(out, `unknown controller "bogus"`) {
				return &unexpected{out}
			}
			return nil
		})
	})

	t.Run("refuses a second cluster on the same data dir or ports", func(t *testing.T) {
		other := tempDataDir(t)
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"same data dir", []string{"--data-dir", dataDir, "--port-base", "18443"}, "in use by a running cluster"},
			{"same ports", []string{"--data-dir", other, "--port-base", portBase}, "already in use"},
		} {
			code, out := runUp(t, bin, tc.args...)
			if code != 1 || !strings.Contains(out, tc.want) || !strings.Contains(out, "kubeparts up: error:") {
				t.Errorf("%s: exit %d, output:\n%s\nwant exit 1 and an error line containing %q", tc.name, code, out, tc.want)
			}
			if left := clusterProcesses(t, other); len(left) > 0 {
				t.Errorf("%s: refused up left processes: %v", tc.name, left)
			}
		}
		if _, err := kubectl(t, bin, kc, "get", "--raw", "/readyz"); err != nil {
			t.Errorf("running cluster disturbed by the refused up: %v", err)
		}
	})

	if code := up.stop(t, syscall.SIGINT, 90*time.Second); code != 0 {
		t.Fatalf("up exited %d after SIGINT:\n%s", code, up.output())
	}
	assertStoppedCleanly(t, up)
	assertNothingLeft(t, dataDir)
	if out, err := exec.Command(filepath.Join(bin, "kubeparts"), "status", "--data-dir", dataDir).CombinedOutput(); err != nil || !strings.Contains(string(out), "is stopped") {
		t.Errorf("kubeparts status after stop: %v: %s", err, out)
	}

	// A restart on the same data dir keeps the cluster's objects and runs the pod again.
	restarted := time.Now()
	up = startUp(t, bin, "--data-dir", dataDir, "--port-base", portBase)
	kc = up.waitReady(t, 4*time.Minute)
	if out, err := kubectl(t, bin, kc, "-n", "e2e", "get", "configmap", "survivor", "-o", "jsonpath={.data.key}"); err != nil || out != "value" {
		t.Fatalf("configmap after restart = %q, %v", out, err)
	}
	eventually(t, 90*time.Second, "smoke pod running again after restart", podRunning(t, bin, kc, restarted))

	// A killed up cannot clean up; the next one on the data dir must.
	up.stop(t, syscall.SIGKILL, 30*time.Second)
	// ... and swaps the controller manager back to the stock one.
	up = startUp(t, bin, "--data-dir", dataDir, "--port-base", portBase, "--fresh", "--stock=controller-manager")
	kc = up.waitReady(t, 4*time.Minute)
	if !strings.Contains(up.output(), "cleaning up") {
		t.Errorf("up after a killed one did not report cleaning up its leftovers:\n%s", up.output())
	}
	if out, err := kubectl(t, bin, kc, "get", "namespace", "e2e"); err == nil || !strings.Contains(out, "NotFound") {
		t.Errorf("--fresh kept namespace e2e: %q, %v", out, err)
	}
	if strings.Contains(up.output(), "kubeparts-controller-manager ") {
		t.Errorf("--stock=controller-manager still started kubeparts-controller-manager:\n%s", up.output())
	}
	eventually(t, 60*time.Second, "stock controllers run the Deployment", func() error {
		if _, err := kubectl(t, bin, kc, "get", "deploy", "stockweb"); err != nil {
			if _, err := kubectl(t, bin, kc, "create", "deployment", "stockweb", "--image=registry.k8s.io/pause:3.10"); err != nil {
				return err
			}
		}
		out, err := kubectl(t, bin, kc, "get", "pods", "-l", "app=stockweb", "-o", "jsonpath={.items[*].metadata.managedFields[*].manager}")
		if err != nil || !strings.Contains(out, "kube-controller-manager") {
			return &unexpected{out}
		}
		return nil
	})
	if code := up.stop(t, syscall.SIGTERM, 90*time.Second); code != 0 {
		t.Fatalf("up exited %d after SIGTERM:\n%s", code, up.output())
	}
	assertNothingLeft(t, dataDir)
	for _, ns := range namespacesWith(t, "cni-") {
		if !slices.Contains(netnsBefore, ns) {
			t.Errorf("pod network namespace %s left in /run/netns", ns)
		}
	}
}

// TestUpBadInput: each mistake gets one clear error line and a non-zero exit, and no
// process is left behind.
func TestUpBadInput(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	empty := t.TempDir()
	busy, err := net.Listen("tcp", ":19443")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown role", []string{"--stock=controller-manager,bogus"}, `unknown role "bogus" in --stock`},
		{"missing binary", []string{"--bin-dir", empty}, "missing binaries in " + empty},
		{"port in use", []string{"--port-base", "19443"}, "port 19443 (kube-apiserver) is already in use"},
		{"port base out of range", []string{"--port-base", "80"}, "--port-base 80 out of range"},
		{"invalid node name", []string{"--node-name", "Bad_Name"}, `node name "Bad_Name" is not valid`},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := tempDataDir(t)
			code, out := runUp(t, bin, append([]string{"--data-dir", dataDir}, tc.args...)...)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			if code != 1 || !strings.HasPrefix(last, "kubeparts up: error:") || !strings.Contains(last, tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit 1 and a last line `kubeparts up: error: ...%s...`", code, out, tc.want)
			}
			if left := clusterProcesses(t, dataDir); len(left) > 0 {
				t.Errorf("left processes: %v", left)
			}
		})
	}
}

// TestUpComponentCrash: a component that dies (kill -9 of kubeparts-scheduler) is
// started again after a back-off while the cluster keeps running; up says so in one
// line, `kubeparts status` counts the restart, the new scheduler schedules, and a
// clean stop leaves nothing behind.
func TestUpComponentCrash(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	dataDir := tempDataDir(t)
	up := startUp(t, bin, "--data-dir", dataDir, "--port-base", "20443")
	kc := up.waitReady(t, 4*time.Minute)
	var victim int
	for _, line := range strings.Split(up.output(), "\n") {
		if strings.Contains(line, "kubeparts-scheduler ") && strings.Contains(line, "(pid ") {
			pid := line[strings.LastIndex(line, "(pid ")+5 : strings.LastIndex(line, ")")]
			victim, _ = strconv.Atoi(pid)
		}
	}
	if victim == 0 {
		t.Fatalf("no scheduler pid in:\n%s", up.output())
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "up says it restarts the scheduler", func() error {
		if !strings.Contains(up.output(), "kubeparts-scheduler signal: killed; restarting it in 1s (restart 1;") {
			return &unexpected{up.output()}
		}
		return nil
	})
	eventually(t, 30*time.Second, "kubeparts status counts the restart", func() error {
		out, err := exec.Command(filepath.Join(bin, "kubeparts"), "status", "--data-dir", dataDir).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "and ready; restarts: kubeparts-scheduler 1;") {
			return &unexpected{string(out)}
		}
		return nil
	})
	eventually(t, 30*time.Second, "the components view counts the restart", func() error {
		out, err := kubectl(t, bin, kc, "get", "component", "kubeparts-scheduler", "-o", "jsonpath={.status.restarts} {.status.instances[0].restarts}")
		if err != nil || strings.TrimSpace(out) != "1 1" {
			return fmt.Errorf("restarts %q %v", out, err)
		}
		return nil
	})
	select {
	case <-up.done:
		t.Fatalf("up ended after its scheduler died:\n%s", up.output())
	default:
	}
	// The new scheduler schedules.
	if _, err := kubectl(t, bin, kc, "run", "after-crash", "--image=registry.k8s.io/pause:3.10", "--image-pull-policy=Never"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "a pod scheduled by the restarted scheduler", func() error {
		out, err := kubectl(t, bin, kc, "get", "pod", "after-crash", "-o", "jsonpath={.spec.nodeName}")
		if err != nil || out == "" {
			return &unexpected{out}
		}
		return nil
	})
	if code := up.stop(t, syscall.SIGINT, 2*time.Minute); code != 0 {
		t.Fatalf("up exited %d:\n%s", code, up.output())
	}
	assertNothingLeft(t, dataDir)
}
