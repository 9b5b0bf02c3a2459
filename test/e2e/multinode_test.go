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

// A web server per node: it answers with the name of its node and logs every
// client's address (busybox httpd -vv), so a request shows both where it went
// and whether its source address survived the trip.
const webPod = `apiVersion: v1
kind: Pod
metadata:
  name: web-@NODE@
  labels: {app: web}
spec:
  nodeName: '@NODE@'
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: docker.io/library/busybox:1.35
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo $NODE_NAME > /www/index.html && exec httpd -f -vv -p 8080 -h /www"]
    env:
    - name: NODE_NAME
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    readinessProbe:
      httpGet: {port: 8080, path: /index.html}
      periodSeconds: 1
`

// TestUpMultiNode runs `kubeparts up --nodes 3`: the host's node and two
// workers, each in its own network namespace with its own containerd, agent
// and pod CIDR. Every pod reaches every other pod by its pod IP without NAT,
// kube-apiserver reaches every agent (exec, logs, metrics), a restart with
// fewer nodes deletes the Nodes it no longer runs, and a stop leaves no
// namespace, link or process behind.
func TestUpMultiNode(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	dataDir := tempDataDir(t)
	const name = "mn"
	nodes := []string{name, name + "-worker1", name + "-worker2"}
	plantStaleMasquerade(t, dataDir)
	// Without the cloud-controller-manager, so that up itself deletes the
	// Node of a worker the next run lacks (with it, the cloud does:
	// TestUpCloud).
	up := startUp(t, bin, "--data-dir", dataDir, "--port-base", "24443", "--node-name", name, "--nodes", "3", "--stock=cloud-controller-manager")
	kc := up.waitReady(t, 5*time.Minute)
	if out, err := exec.Command("iptables", "-w", "-t", "nat", "-S", "POSTROUTING").Output(); err != nil || strings.Contains(string(out), "CNI-kpe2estale") {
		t.Errorf("stale masquerade rules in the cluster's pod CIDR still there once up is ready (%v):\n%s", err, out)
	}

	out, err := kubectl(t, bin, kc, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.addresses[?(@.type=="InternalIP")].address} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "True" {
			t.Fatalf("node line %q: want name, InternalIP, Ready=True", line)
		}
		ips[f[0]] = f[1]
	}
	if len(ips) != 3 || ips[nodes[1]] == ips[nodes[2]] || ips[nodes[0]] == ips[nodes[1]] {
		t.Fatalf("nodes and their IPs = %v, want %v with distinct InternalIPs", ips, nodes)
	}

	manifest := filepath.Join(dataDir, "web.yaml")
	var docs []string
	for _, n := range nodes {
		docs = append(docs, strings.ReplaceAll(webPod, "@NODE@", n))
	}
	if err := os.WriteFile(manifest, []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	// The default ServiceAccount appears a moment after the namespace.
	eventually(t, 60*time.Second, "create the web pods", func() error {
		_, err := kubectl(t, bin, kc, "apply", "-f", manifest)
		return err
	})
	podIPs := map[string]string{}
	eventually(t, 120*time.Second, "a Ready web pod on every node, each in its node's pod CIDR", func() error {
		out, err := kubectl(t, bin, kc, "get", "pods", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.spec.nodeName} {.status.podIP} {.status.hostIP} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err != nil {
			return err
		}
		subnets := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) != 4 || f[3] != "True" || f[2] != ips[f[0]] {
				return &unexpected{out}
			}
			podIPs[f[0]] = f[1]
			subnets[f[1][:strings.LastIndexByte(f[1], '.')]] = true
		}
		if len(podIPs) != 3 || len(subnets) != 3 {
			return &unexpected{out}
		}
		return nil
	})

	// Every pod to every other one, by pod IP; kubectl exec goes through the
	// client's node agent, so this also reaches each agent from kube-apiserver.
	// (No -T: Debian's static busybox wget crashes on it.)
	for _, from := range nodes {
		for _, to := range nodes {
			if from == to {
				continue
			}
			got, err := kubectl(t, bin, kc, "exec", "web-"+from, "--", "wget", "-qO-", fmt.Sprintf("http://%s:8080/", podIPs[to]))
			if err != nil || strings.TrimSpace(got) != to {
				t.Errorf("web-%s -> web-%s (%s): %q %v, want %q", from, to, podIPs[to], got, err, to)
			}
		}
	}
	// No NAT: each server logged its clients' pod IPs ("[::ffff:IP]:port: url:/").
	for _, server := range nodes {
		logs, err := kubectl(t, bin, kc, "logs", "web-"+server)
		if err != nil {
			t.Fatal(err)
		}
		for _, client := range nodes {
			if client != server && !strings.Contains(logs, "ffff:"+podIPs[client]+"]:") {
				t.Errorf("web-%s did not see web-%s's pod IP %s as the source:\n%s", server, client, podIPs[client], logs)
			}
		}
	}
	// kubeparts-apiserver scrapes the workers' agents too.
	eventually(t, 90*time.Second, "kubectl top node on a worker", func() error {
		out, err := kubectl(t, bin, kc, "top", "node", nodes[2], "--no-headers")
		if err != nil || !strings.HasPrefix(out, nodes[2]+" ") {
			return &unexpected{out}
		}
		return nil
	})

	l, err := localcluster.LayoutFor(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Base(l.RunDir) // the cluster's id, in its namespace and link names
	if ns := namespacesWith(t, prefix); len(ns) != 2 {
		t.Errorf("network namespaces of the cluster = %v, want one per worker", ns)
	}
	if code := up.stop(t, syscall.SIGINT, 120*time.Second); code != 0 {
		t.Fatalf("up exited %d:\n%s", code, up.output())
	}
	assertNothingLeft(t, dataDir)
	if ns := namespacesWith(t, prefix); len(ns) != 0 {
		t.Errorf("network namespaces left after stop: %v", ns)
	}
	if links, _ := exec.Command("ip", "-o", "link", "show").Output(); strings.Contains(string(links), "kp"+prefix+"w") {
		t.Errorf("worker links left after stop:\n%s", links)
	}

	// Fewer nodes on the same data dir: the Node of the worker that no longer
	// runs is deleted rather than left NotReady forever.
	up = startUp(t, bin, "--data-dir", dataDir, "--port-base", "24443", "--node-name", name, "--nodes", "2", "--stock=cloud-controller-manager")
	kc = up.waitReady(t, 5*time.Minute)
	if !strings.Contains(up.output(), "deleted node "+nodes[2]) {
		t.Errorf("up did not say it deleted %s:\n%s", nodes[2], up.output())
	}
	out, err = kubectl(t, bin, kc, "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil || out != nodes[0]+" "+nodes[1] {
		t.Errorf("nodes after restart with --nodes 2 = %q %v, want %v", out, err, nodes[:2])
	}
	if code := up.stop(t, syscall.SIGINT, 120*time.Second); code != 0 {
		t.Fatalf("up exited %d:\n%s", code, up.output())
	}
	assertNothingLeft(t, dataDir)
}

// namespacesWith lists the named network namespaces containing s.
func namespacesWith(t *testing.T, s string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v %s", err, out)
	}
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(f[0], s) {
			found = append(found, f[0])
		}
	}
	return found
}

// plantStaleMasquerade leaves what a killed cluster with the same pod CIDR
// leaves: the bridge plugin's masquerade rule and chain for each of the
// addresses the host node's first pods get. up must remove them: such leftovers
// NATed the host node's pod traffic to the workers in a CI run (the pod-IP
// checks below caught it).
func plantStaleMasquerade(t *testing.T, dataDir string) {
	t.Helper()
	l, err := localcluster.LayoutFor(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	ip4 := l.ClusterCIDR.IP.To4()
	iptables := func(args ...string) error {
		out, err := exec.Command("iptables", append([]string{"-w", "-t", "nat"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	plant := func(chain string, rule []string) { plantRule(t, iptables, chain, rule) }
	// The host's node gets one of the first three /24s (node IPAM goes by
	// registration order), and its first pods the first addresses of it.
	for n := range 3 {
		for host := 2; host <= 8; host++ {
			chain := fmt.Sprintf("CNI-kpe2estale%d-%d", n, host)
			rule := []string{"POSTROUTING", "-s", fmt.Sprintf("%d.%d.%d.%d/32", ip4[0], ip4[1], n, host), "-m", "comment", "--comment", `name: "kubeparts" id: "stale"`, "-j", chain}
			plant(chain, rule)
		}
	}
}

// plantRule adds a chain that masquerades and rule jumping to it, removed at
// the test's end if up left it.
func plantRule(t *testing.T, iptables func(...string) error, chain string, rule []string) {
	t.Helper()
	for _, args := range [][]string{{"-N", chain}, {"-A", chain, "-j", "MASQUERADE"}, append([]string{"-A"}, rule...)} {
		if err := iptables(args...); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if iptables(append([]string{"-D"}, rule...)...) == nil {
			_ = iptables("-F", chain)
			_ = iptables("-X", chain)
		}
	})
}
