package e2e

import (
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

// TestUpInCluster installs the in-cluster manifests under config/ the way
// the README tells users to, on a `kubeparts up --nodes 2` cluster whose
// controller manager, scheduler and API extension are the stock ones: the
// images from `make image` imported on the nodes, then kubectl apply. Each
// piece then runs as pods that reach kube-apiserver through the kubernetes
// Service (kubeparts-proxy's rules, CoreDNS for names): the controller
// manager and the second scheduler take their Leases, kubeparts-apiserver
// serves metrics.k8s.io for `kubectl top`, and the kubeparts-proxy
// DaemonSet programs every node from kube-proxy's ConfigMap.
func TestUpInCluster(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	images := []string{"kubeparts-controller-manager", "kubeparts-scheduler", "kubeparts-apiserver", "kubeparts-proxy"}
	for _, i := range images {
		if _, err := os.Stat(filepath.Join(bin, "images", i+".tar")); err != nil {
			t.Fatalf("%v: run make image", err)
		}
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := tempDataDir(t)
	const name = "ic"
	up := startUp(t, bin, "--data-dir", dataDir, "--port-base", "27443", "--node-name", name, "--nodes", "2",
		"--stock", "controller-manager,scheduler,apiserver")
	kc := up.waitReady(t, 5*time.Minute)
	layout, err := localcluster.LayoutFor(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	// The images on every node, as `ctr images import` per the README.
	for _, sock := range []string{filepath.Join(layout.RunDir, "containerd.sock"), filepath.Join(layout.RunDir, "worker1", "containerd.sock")} {
		for _, i := range images {
			if out, err := exec.Command("ctr", "--address", sock, "-n", "k8s.io", "images", "import", filepath.Join(bin, "images", i+".tar")).CombinedOutput(); err != nil {
				t.Fatalf("import %s: %v: %s", i, err, out)
			}
		}
	}
	// config/default as documented, with the stock manager kept in charge of
	// the controllers kubeparts also implements (it runs them all here): the
	// in-cluster manager runs only kubeparts' own podgroup-controller, so
	// nothing is reconciled twice.
	overlay := t.TempDir()
	rel, err := filepath.Rel(overlay, filepath.Join(repo, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(overlay, "kustomization.yaml"), fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %s
patches:
- target: {kind: Deployment, name: kubeparts-controller-manager}
  patch: |
    - op: replace
      path: /spec/template/spec/containers/0/args/0
      value: --controllers=podgroup-controller
`, rel))
	// kubeparts-apiserver's certificates, made where kustomize wants them.
	apiserverDir := filepath.Join(t.TempDir(), "apiserver")
	if out, err := exec.Command("cp", "-r", filepath.Join(repo, "config", "apiserver"), apiserverDir).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	certs := exec.Command("go", "run", "./hack/apiserver-certs", filepath.Join(apiserverDir, "certs"))
	certs.Dir = repo
	if out, err := certs.CombinedOutput(); err != nil {
		t.Fatalf("apiserver-certs: %v: %s", err, out)
	}
	// kube-proxy's ConfigMap (a kubeadm cluster has its own) with this cluster's pod range.
	cm, err := os.ReadFile(filepath.Join(repo, "config", "proxy", "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	proxyCM := filepath.Join(t.TempDir(), "kube-proxy.yaml")
	apiserver := strings.TrimSpace(jsonpath(t, bin, kc, "endpointslice/kubernetes", "{.endpoints[0].addresses[0]}"))
	writeFile(t, proxyCM, strings.NewReplacer("clusterCIDR: 10.244.0.0/16", "clusterCIDR: "+layout.ClusterCIDR.String(),
		"https://CONTROL-PLANE-ENDPOINT:6443", "https://"+apiserver+":27443").Replace(string(cm)))
	for _, args := range [][]string{
		{"apply", "--server-side", "-k", overlay},
		{"apply", "--server-side", "-k", filepath.Join(repo, "config", "scheduler")},
		{"apply", "--server-side", "-f", filepath.Join(repo, "config", "rbac", "apiserver.yaml")},
		{"apply", "--server-side", "-k", apiserverDir},
		{"apply", "--server-side", "-f", proxyCM},
		{"apply", "--server-side", "-k", filepath.Join(repo, "config", "proxy")},
	} {
		eventually(t, 60*time.Second, "kubectl "+strings.Join(args, " "), func() error {
			_, err := kubectl(t, bin, kc, args...)
			return err
		})
	}
	// kubeparts-proxy's pods use the default table; it stays after the pods
	// are gone, as kube-proxy's rules do, until --cleanup.
	t.Cleanup(func() { _ = exec.Command(filepath.Join(bin, "kubeparts-proxy"), "--cleanup").Run() })

	rollout := func(kind, obj string) {
		eventually(t, 3*time.Minute, obj+" rolled out", func() error {
			_, err := kubectl(t, bin, kc, "-n", "kube-system", "rollout", "status", kind+"/"+obj, "--timeout=5s")
			return err
		})
	}
	rollout("deployment", "kubeparts-controller-manager")
	rollout("deployment", "kubeparts-scheduler")
	rollout("deployment", "kubeparts-apiserver")
	rollout("daemonset", "kubeparts-proxy")

	leaseHeldByPod(t, bin, kc, "kubeparts-controller-manager", "app.kubernetes.io/name=kubeparts-controller-manager")
	leaseHeldByPod(t, bin, kc, "kubeparts-scheduler", "app.kubernetes.io/name=kubeparts-scheduler")

	// The second scheduler places a pod that asks for it.
	apply(t, bin, kc, `apiVersion: v1
kind: Pod
metadata: {name: by-kubeparts}
spec:
  schedulerName: kubeparts-scheduler
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/kubeparts/nettool:dev
    imagePullPolicy: Never
    args: ["serve"]
`)
	eventually(t, 60*time.Second, "pod scheduled by the in-cluster kubeparts-scheduler", func() error {
		out, err := kubectl(t, bin, kc, "get", "events", "--field-selector", "involvedObject.name=by-kubeparts,reason=Scheduled", "-o", "jsonpath={.items[*].reportingComponent} {.items[*].source.component}")
		if err != nil || !strings.Contains(out, "kubeparts-scheduler") {
			return fmt.Errorf("Scheduled events by %q (%v)", out, err)
		}
		return nil
	})

	// metrics.k8s.io from the in-cluster kubeparts-apiserver: kube-apiserver
	// reaches it through its Service, it reaches the node agents.
	eventually(t, 2*time.Minute, "kubectl top nodes through the in-cluster kubeparts-apiserver", func() error {
		out, err := kubectl(t, bin, kc, "top", "nodes")
		if err != nil {
			return err
		}
		if !strings.Contains(out, name+"-worker1") {
			return fmt.Errorf("top: %s", out)
		}
		return nil
	})

	// The DaemonSet's proxies program each node's own table from kube-proxy's
	// ConfigMap: the kubernetes Service is in both.
	// Each found its own Node (--hostname-override=$(NODE_NAME), expanded by the
	// node agent): its NodePort addresses are that Node's InternalIP.
	kubernetesIP := jsonpath(t, bin, kc, "svc/kubernetes", "{.spec.clusterIP}")
	ips := nodeIPs(t, bin, kc)
	for node, ns := range map[string]string{name: "", name + "-worker1": "kp" + filepath.Base(layout.RunDir) + "-worker1"} {
		eventually(t, 60*time.Second, "kubeparts-proxy DaemonSet rules on "+node, func() error {
			out, err := inNetns(ns, "nft", "list", "map", "ip", "kubeparts-proxy", "service-ips")
			if err != nil || !strings.Contains(out, kubernetesIP+" . tcp . 443") {
				return fmt.Errorf("%v: %s", err, out)
			}
			out, err = inNetns(ns, "nft", "list", "set", "ip", "kubeparts-proxy", "nodeport-ips")
			if err != nil || !strings.Contains(out, ips[node]) {
				return fmt.Errorf("NodePort addresses of %s (%s): %v: %s", node, ips[node], err, out)
			}
			return nil
		})
	}

	if code := up.stop(t, syscall.SIGINT, 90*time.Second); code != 0 {
		t.Errorf("up exit %d:\n%s", code, up.output())
	}
	assertNothingLeft(t, dataDir)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
