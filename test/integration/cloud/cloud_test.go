// Package cloud tests kubeparts-cloud-controller-manager (k8s.io/cloud-provider's
// controllers with the kubeparts provider) against a real kube-apiserver: node
// initialization, node removal and shutdown, and load balancers on this machine.
package cloud

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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/kubeparts/kubeparts/cloud"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, "cloud", &env))
}

const cluster = "itest"

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	framework.Eventually(t, 60*time.Second, what, f)
}

// startManager writes the inventory and a cloud config, and runs the manager
// with the given controllers.
func startManager(t *testing.T, inv *cloud.Inventory, controllers string, config string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	invPath := filepath.Join(dir, "inventory.json")
	if err := cloud.WriteInventory(invPath, inv); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "cloud.yaml")
	if err := os.WriteFile(cfgPath, []byte("inventory: "+invPath+"\n"+config), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--kubeconfig=" + env.WriteKubeconfig(t), "--cloud-provider=kubeparts", "--cloud-config=" + cfgPath,
		"--controllers=" + controllers, "--leader-elect=false", "--secure-port=0", "--configure-cloud-routes=false",
		"--node-monitor-period=500ms", "--v=2"}, extra...)
	p := env.Run(t, "kubeparts-cloud-controller-manager", args...)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(p.Log)
			t.Logf("manager log (last 3000 bytes):\n%s", tail(string(log), 3000))
		}
	})
	return invPath
}

func hasTaint(n *corev1.Node, key string) bool {
	return slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == key })
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// createNode registers a node as a kubelet with --cloud-provider=external
// does: tainted until the cloud initializes it, Ready as told.
func createNode(t *testing.T, name string, ready corev1.ConditionStatus, uninitialized bool, addresses ...corev1.NodeAddress) {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if uninitialized {
		n.Spec.Taints = []corev1.Taint{{Key: "node.cloudprovider.kubernetes.io/uninitialized", Value: "true", Effect: corev1.TaintEffectNoSchedule}}
	}
	if _, err := env.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := env.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, Reason: "Test", LastHeartbeatTime: now, LastTransitionTime: now}}
		n.Status.Addresses = addresses
		_, err = env.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNodeInitialization: the cloud node controller gives a tainted node
// its provider ID, addresses, instance type, region and zone from the
// inventory, then lifts the taint; a node of no host stays tainted.
func TestNodeInitialization(t *testing.T) {
	inv := &cloud.Inventory{Cluster: cluster, Region: "local", Hosts: []cloud.Host{
		{Name: "init-a", InternalIP: "192.0.2.10", Zone: "zone-a", InstanceType: "kubeparts-machine"},
		{Name: "init-b", InternalIP: "192.0.2.11", Zone: "zone-b", InstanceType: "kubeparts-netns", NetNS: "kp-itest-no-netns"},
	}}
	startManager(t, inv, "cloud-node", "")
	createNode(t, "init-a", corev1.ConditionTrue, true)
	createNode(t, "init-b", corev1.ConditionTrue, true)
	createNode(t, "init-unknown", corev1.ConditionTrue, true)
	for _, h := range inv.Hosts {
		eventually(t, "node "+h.Name+" initialized", func() error {
			n, err := env.Client.CoreV1().Nodes().Get(context.Background(), h.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == "node.cloudprovider.kubernetes.io/uninitialized" }) {
				return fmt.Errorf("still tainted")
			}
			want := map[string]string{
				corev1.LabelInstanceTypeStable: h.InstanceType,
				corev1.LabelTopologyZone:       h.Zone,
				corev1.LabelTopologyRegion:     "local",
			}
			for k, v := range want {
				if n.Labels[k] != v {
					return fmt.Errorf("label %s=%q, want %q", k, n.Labels[k], v)
				}
			}
			if n.Spec.ProviderID != "kubeparts://"+cluster+"/"+h.Name {
				return fmt.Errorf("providerID %q", n.Spec.ProviderID)
			}
			if !slices.Contains(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: h.InternalIP}) {
				return fmt.Errorf("addresses %v lack InternalIP %s", n.Status.Addresses, h.InternalIP)
			}
			return nil
		})
	}
	n, err := env.Client.CoreV1().Nodes().Get(context.Background(), "init-unknown", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.ProviderID != "" || !hasTaint(n, "node.cloudprovider.kubernetes.io/uninitialized") {
		t.Errorf("a node with no host was initialized: providerID %q, taints %v", n.Spec.ProviderID, n.Spec.Taints)
	}
}

// TestNodeLifecycle: a NotReady node whose host is gone is deleted; one whose
// host is stopped gets the shutdown taint; a Ready node is left alone.
func TestNodeLifecycle(t *testing.T) {
	inv := &cloud.Inventory{Cluster: cluster, Region: "local", Hosts: []cloud.Host{
		{Name: "life-stopped", InternalIP: "192.0.2.20", InstanceType: "kubeparts-machine", Stopped: true},
		{Name: "life-running", InternalIP: "192.0.2.21", InstanceType: "kubeparts-machine"},
	}}
	startManager(t, inv, "cloud-node-lifecycle", "")
	createNode(t, "life-gone", corev1.ConditionFalse, false)
	createNode(t, "life-gone-ready", corev1.ConditionTrue, false)
	createNode(t, "life-stopped", corev1.ConditionUnknown, false)
	createNode(t, "life-running", corev1.ConditionFalse, false)
	ctx := context.Background()
	eventually(t, "node of a gone host deleted", func() error {
		_, err := env.Client.CoreV1().Nodes().Get(ctx, "life-gone", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
	eventually(t, "node of a stopped host tainted", func() error {
		n, err := env.Client.CoreV1().Nodes().Get(ctx, "life-stopped", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == "node.cloudprovider.kubernetes.io/shutdown" }) {
			return fmt.Errorf("taints %v", n.Spec.Taints)
		}
		return nil
	})
	for _, name := range []string{"life-gone-ready", "life-running"} {
		n, err := env.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if hasTaint(n, "node.cloudprovider.kubernetes.io/shutdown") {
			t.Errorf("%s tainted shut down: %v", name, n.Spec.Taints)
		}
	}
}

// TestLoadBalancers: addresses come from the pool onto the dummy interface
// and into the table; a full pool, a taken or foreign address are Events on
// the Service, and deleting a Service gives its address back.
func TestLoadBalancers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a dummy interface and an nftables table need root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed")
	}
	iface := fmt.Sprintf("kplbt%d", os.Getpid()%100000)
	table := fmt.Sprintf("kubeparts-lb-itest-%d", os.Getpid())
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "delete", iface).Run()
		_ = exec.Command("ip", "addr", "flush", "dev", "lo", "label", cloud.LoopbackLabel(iface)).Run()
		_ = exec.Command("nft", "delete", "table", "ip", table).Run()
	})
	inv := &cloud.Inventory{Cluster: cluster, Region: "local", Hosts: []cloud.Host{
		{Name: "lb-node", InternalIP: "192.0.2.30", InstanceType: "kubeparts-netns", NetNS: "kp-itest-none"},
	}}
	startManager(t, inv, "service-lb-controller", fmt.Sprintf("nftablesTable: %s\nloadBalancerInterface: %s\n", table, iface),
		"--load-balancer-cidr=198.51.100.0/30")
	createNode(t, "lb-node", corev1.ConditionTrue, false, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "192.0.2.30"})
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "lb")
	if err != nil {
		t.Fatal(err)
	}
	create := func(name, loadBalancerIP string) {
		t.Helper()
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerIP: loadBalancerIP,
				Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}}}
		if _, err := env.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ingress := func(name string) string {
		t.Helper()
		var ip string
		eventually(t, "address of "+name, func() error {
			s, err := env.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(s.Status.LoadBalancer.Ingress) == 0 {
				return fmt.Errorf("no ingress yet")
			}
			ip = s.Status.LoadBalancer.Ingress[0].IP
			return nil
		})
		return ip
	}
	event := func(name, want string) {
		t.Helper()
		eventually(t, name+" event saying "+want, func() error {
			evs, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
			if err != nil {
				return err
			}
			for _, e := range evs.Items {
				if e.Reason == "SyncLoadBalancerFailed" && strings.Contains(e.Message, want) {
					return nil
				}
			}
			return fmt.Errorf("%d events, none SyncLoadBalancerFailed saying %q", len(evs.Items), want)
		})
	}
	// The addresses: on the dummy interface, or on lo under its label where
	// the kernel has no dummy driver.
	onInterface := func() []string {
		out, _ := exec.Command("ip", "-4", "-o", "addr", "show", "dev", iface).CombinedOutput()
		if strings.Contains(string(out), "does not exist") {
			out, _ = exec.Command("ip", "-4", "-o", "addr", "show", "label", cloud.LoopbackLabel(iface)).CombinedOutput()
		}
		var addrs []string
		for _, f := range strings.Fields(string(out)) {
			if a, ok := strings.CutSuffix(f, "/32"); ok {
				addrs = append(addrs, a)
			}
		}
		slices.Sort(addrs)
		return addrs
	}
	inTable := func(ip string) bool {
		out, _ := exec.Command("nft", "list", "map", "ip", table, "lb-ports").CombinedOutput()
		return strings.Contains(string(out), ip+" . tcp . 80 : goto lb-")
	}

	create("first", "")
	create("second", "")
	a, b := ingress("first"), ingress("second")
	if got := []string{a, b}; !slices.Contains(got, "198.51.100.1") || !slices.Contains(got, "198.51.100.2") {
		t.Fatalf("addresses %v, want the pool's two", got)
	}
	eventually(t, "addresses on "+iface+" and in the table", func() error {
		if got := onInterface(); !slices.Equal(got, []string{"198.51.100.1", "198.51.100.2"}) {
			return fmt.Errorf("interface holds %v", got)
		}
		if !inTable(a) || !inTable(b) {
			return fmt.Errorf("table lacks an address")
		}
		return nil
	})
	create("third", "")
	event("third", "pool 198.51.100.0/30 is exhausted")
	create("wants-taken", a)
	event("wants-taken", a+" is already used by Service "+ns+"/first")
	create("wants-foreign", "203.0.113.9")
	event("wants-foreign", "outside the load-balancer pool")

	// The refused ones go first: retried, they would take the address the
	// deletion frees.
	for _, name := range []string{"third", "wants-taken", "wants-foreign", "first"} {
		if err := env.Client.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "first's address released", func() error {
		if inTable(a) || slices.Contains(onInterface(), a) {
			return fmt.Errorf("%s still programmed (interface %v)", a, onInterface())
		}
		return nil
	})
	create("fourth", "")
	if got := ingress("fourth"); got != a {
		t.Errorf("fourth got %s, want the released %s", got, a)
	}
}

// TestRoutes: the route controller routes a worker's pod range to its
// address through the kubeparts provider (a tagged kernel route), marks the
// nodes' network available, refuses what it cannot route with an Event, and
// removes stale routes of this cluster only.
func TestRoutes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a network namespace and kernel routes need root")
	}
	id := os.Getpid() % 100000
	netns, veth := fmt.Sprintf("kp-itest-rt%d", id), fmt.Sprintf("kpitrt%d", id)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "delete", netns).Run()
		_ = exec.Command("ip", "link", "delete", veth).Run()
		_ = exec.Command("ip", "route", "delete", "10.252.0.0/24", "proto", "107").Run()
	})
	// A worker host as `up` makes one: a namespace joined by a /30.
	ip("netns", "add", netns)
	ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
	ip("addr", "add", "100.127.255.1/30", "dev", veth)
	ip("link", "set", veth, "up")
	ip("-n", netns, "addr", "add", "100.127.255.2/30", "dev", "eth0")
	ip("-n", netns, "link", "set", "eth0", "up")
	// Tagged routes left behind: a stale one of this cluster, and another
	// cluster's (outside this cluster's CIDR).
	ip("route", "replace", "10.251.9.0/24", "via", "100.127.255.2", "proto", "107")
	ip("route", "replace", "10.252.0.0/24", "via", "100.127.255.2", "proto", "107")

	inv := &cloud.Inventory{Cluster: cluster, Region: "local", Hosts: []cloud.Host{
		{Name: "rt-machine", InternalIP: "100.127.255.1", InstanceType: "kubeparts-machine"},
		{Name: "rt-worker", InternalIP: "100.127.255.2", InstanceType: "kubeparts-netns", NetNS: netns},
	}}
	startManager(t, inv, "route", "", "--configure-cloud-routes=true", "--cluster-cidr=10.251.0.0/16", "--route-reconciliation-period=1s")
	ctx := context.Background()
	for name, cidr := range map[string]string{"rt-machine": "10.251.0.0/24", "rt-worker": "10.251.1.0/24", "rt-nohost": "10.251.2.0/24"} {
		createNode(t, name, corev1.ConditionTrue, false)
		patch := fmt.Sprintf(`{"spec":{"podCIDR":%q,"podCIDRs":[%q]}}`, cidr, cidr)
		if _, err := env.Client.CoreV1().Nodes().Patch(ctx, name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tagged := func() string {
		out, _ := exec.Command("ip", "-4", "route", "show", "proto", "107").CombinedOutput()
		return string(out)
	}
	eventually(t, "the worker's pod range routed and the stale route gone", func() error {
		r := tagged()
		if !strings.Contains(r, "10.251.1.0/24 via 100.127.255.2 dev "+veth) || !strings.Contains(r, "src 100.127.255.1") {
			return fmt.Errorf("tagged routes:\n%s", r)
		}
		if strings.Contains(r, "10.251.9.0/24") {
			return fmt.Errorf("stale route still there:\n%s", r)
		}
		return nil
	})
	if r := tagged(); !strings.Contains(r, "10.252.0.0/24") || strings.Contains(r, "10.251.0.0/24") {
		t.Errorf("another cluster's route removed, or the machine's own node routed away:\n%s", r)
	}
	network := func(name string) corev1.NodeCondition {
		n, err := env.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeNetworkUnavailable {
					return c
				}
			}
		}
		return corev1.NodeCondition{}
	}
	for name, want := range map[string]corev1.ConditionStatus{"rt-machine": corev1.ConditionFalse, "rt-worker": corev1.ConditionFalse, "rt-nohost": corev1.ConditionTrue} {
		eventually(t, name+" NetworkUnavailable="+string(want), func() error {
			if c := network(name); c.Status != want {
				return fmt.Errorf("NetworkUnavailable=%s %s", c.Status, c.Reason)
			}
			return nil
		})
	}
	eventually(t, "an Event for the node of no host", func() error {
		evs, err := env.Client.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=rt-nohost"})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedToCreateRoute" && strings.Contains(e.Message, "no host in the inventory") {
				return nil
			}
		}
		return fmt.Errorf("%d events, none FailedToCreateRoute saying the node has no host", len(evs.Items))
	})

	// A Node that goes takes its route with it.
	if err := env.Client.CoreV1().Nodes().Delete(ctx, "rt-worker", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted node's route removed", func() error {
		if r := tagged(); strings.Contains(r, "10.251.1.0/24") {
			return fmt.Errorf("still routed:\n%s", r)
		}
		return nil
	})
}
