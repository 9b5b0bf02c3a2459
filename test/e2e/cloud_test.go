package e2e

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeparts/kubeparts/cloud"
	"github.com/kubeparts/kubeparts/internal/localcluster"
)

const cloudManifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 4
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: spread}}}
      containers:
      - name: web
        image: docker.io/kubeparts/nettool:dev
        imagePullPolicy: Never
        args: ["serve", "--http", "8080"]
        readinessProbe: {httpGet: {port: 8080, path: /}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: spread-lb}
spec:
  type: LoadBalancer
  selector: {app: spread}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: only-here, labels: {app: only-here}}
spec:
  nodeName: '@NODE@'
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: docker.io/kubeparts/nettool:dev
    imagePullPolicy: Never
    args: ["serve", "--http", "8080"]
    readinessProbe: {httpGet: {port: 8080, path: /}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: local-lb}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: only-here}
  ports: [{port: 80, targetPort: 8080}]
`

// TestUpCloud: kubeparts-cloud-controller-manager on `up --nodes 3 --zones
// a,b`: nodes initialized by the cloud (provider ID, zone, region, instance
// type, taint lifted); pod ranges from node IPAM routed by the cloud, pods
// reaching pods across nodes; zone spreading for real; LoadBalancer Services
// answering from the host at their address (externalTrafficPolicy Local
// only through the node with the endpoint); a worker the next run lacks is
// deleted by the cloud.
func TestUpCloud(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	dataDir := tempDataDir(t)
	const name = "cl"
	nodes := []string{name, name + "-worker1", name + "-worker2"}
	args := []string{"--data-dir", dataDir, "--port-base", "29443", "--node-name", name, "--zones", "a,b"}
	up := startUp(t, bin, append(args, "--nodes", "3")...)
	kc := up.waitReady(t, 5*time.Minute)
	layout, err := localcluster.LayoutFor(dataDir)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("nodes initialized by the cloud", func(t *testing.T) {
		zones := map[string]string{nodes[0]: "a", nodes[1]: "b", nodes[2]: "a"}
		for _, n := range nodes {
			eventually(t, time.Minute, n+" initialized", func() error {
				got := jsonpath(t, bin, kc, "node/"+n, `{.spec.providerID} {.metadata.labels.topology\.kubernetes\.io/zone} {.metadata.labels.topology\.kubernetes\.io/region} {.metadata.labels.node\.kubernetes\.io/instance-type} {.spec.taints}`)
				want := fmt.Sprintf("kubeparts://%s/%s %s local ", layout.ID, n, zones[n])
				if !strings.HasPrefix(got, want) || strings.Contains(got, "uninitialized") {
					return fmt.Errorf("%q, want %q... and no uninitialized taint", got, want)
				}
				return nil
			})
		}
	})

	apply(t, bin, kc, strings.ReplaceAll(cloudManifest, "@NODE@", nodes[1]))
	eventually(t, 2*time.Minute, "spread and only-here pods ready", func() error {
		out, err := kubectl(t, bin, kc, "get", "pods", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
		if err != nil {
			return err
		}
		if strings.Count(out, "=True") != 5 {
			return fmt.Errorf("pods: %s", out)
		}
		return nil
	})

	t.Run("topology spread over the zones", func(t *testing.T) {
		out, err := kubectl(t, bin, kc, "get", "pods", "-l", "app=spread", "-o", `jsonpath={range .items[*]}{.spec.nodeName} {end}`)
		if err != nil {
			t.Fatal(err)
		}
		perZone := map[string]int{}
		for _, n := range strings.Fields(out) {
			perZone[map[string]string{nodes[0]: "a", nodes[1]: "b", nodes[2]: "a"}[n]]++
		}
		if perZone["a"] != 2 || perZone["b"] != 2 {
			t.Errorf("pods per zone %v (nodes %s), want 2 and 2", perZone, out)
		}
	})

	t.Run("pod ranges from node IPAM, routed by the cloud", func(t *testing.T) {
		// Each node's range is a distinct /24 of the cluster CIDR, and each
		// worker's is routed to it by a tagged kernel route.
		seen := map[string]string{}
		for i, n := range nodes {
			cidr := jsonpath(t, bin, kc, "node/"+n, "{.spec.podCIDR}")
			_, pods, err := net.ParseCIDR(cidr)
			if ones, _ := pods.Mask.Size(); err != nil || ones != 24 || !layout.ClusterCIDR.Contains(pods.IP) || seen[cidr] != "" {
				t.Errorf("%s: pod CIDR %q, want a /24 of %s of its own (seen %v)", n, cidr, layout.ClusterCIDR, seen)
			}
			seen[cidr] = n
			if i == 0 {
				continue
			}
			out, _ := exec2("ip", "-4", "route", "show", cidr, "proto", "107")
			if !strings.Contains(out, "via 100.") {
				t.Errorf("%s: no route of the cloud to %s: %q", n, cidr, out)
			}
		}
		// Every pod answers every other across nodes, on its pod address.
		out, err := kubectl(t, bin, kc, "get", "pods", "-l", "app=spread", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.podIP}={.spec.nodeName} {end}`)
		if err != nil {
			t.Fatal(err)
		}
		type pod struct{ name, ip, node string }
		var pods []pod
		for _, f := range strings.Fields(out) {
			p := strings.Split(f, "=")
			pods = append(pods, pod{p[0], p[1], p[2]})
		}
		for _, from := range pods {
			for _, to := range pods {
				if from.node == to.node {
					continue
				}
				got, err := kubectl(t, bin, kc, "exec", from.name, "--", "/nettool", "get", "http://"+to.ip+":8080/")
				if err != nil || strings.TrimSpace(got) != to.name {
					t.Errorf("%s (%s) -> %s (%s): %v %q", from.name, from.node, to.name, to.node, err, got)
				}
			}
		}
	})

	lbAddress := func(svc string) string {
		t.Helper()
		var ip string
		eventually(t, time.Minute, svc+" address", func() error {
			ip = jsonpath(t, bin, kc, "service/"+svc, "{.status.loadBalancer.ingress[0].ip}")
			if ip == "" {
				return fmt.Errorf("no ingress yet")
			}
			return nil
		})
		if !layout.LoadBalancerCIDR.Contains(net.ParseIP(ip)) {
			t.Fatalf("%s got %s, outside the pool %s", svc, ip, layout.LoadBalancerCIDR)
		}
		return ip
	}

	t.Run("LoadBalancer answers from the host", func(t *testing.T) {
		ip := lbAddress("spread-lb")
		var out string
		eventually(t, 30*time.Second, "spread-lb answering", func() error {
			var err error
			out, err = nettoolErr(bin, "", "get", "--count", "40", "http://"+ip+"/")
			return err
		})
		if counts := tally(out); len(counts) < 2 {
			t.Errorf("40 connections reached %v: want several pods behind the load balancer", counts)
		}
		// On the dummy interface, or on lo where the kernel has no dummy driver.
		out, _ = exec2("ip", "-4", "-o", "addr", "show", "dev", layout.LoadBalancerInterface)
		if !strings.Contains(out, ip+"/32") {
			out, _ = exec2("ip", "-4", "-o", "addr", "show", "label", cloud.LoopbackLabel(layout.LoadBalancerInterface))
		}
		if !strings.Contains(out, ip+"/32") {
			t.Errorf("%s is on neither %s nor lo: %s", ip, layout.LoadBalancerInterface, out)
		}
	})

	t.Run("externalTrafficPolicy Local goes only to the node with the endpoint", func(t *testing.T) {
		ip := lbAddress("local-lb")
		// Nodes without a local endpoint drop such traffic: every one of 30
		// connections succeeding means the load balancer sent none there.
		var out string
		eventually(t, 30*time.Second, "local-lb answering 30 times", func() error {
			var err error
			out, err = nettoolErr(bin, "", "get", "--count", "30", "http://"+ip+"/")
			return err
		})
		if counts := tally(out); counts["only-here"] != 30 {
			t.Errorf("answers %v, want only-here 30 times", counts)
		}
	})

	t.Run("the README's cloud quick start", func(t *testing.T) {
		for _, args := range readmeKubectl(t, "cloud-quickstart") {
			if out, err := kubectl(t, bin, kc, strings.Fields(args)...); err != nil {
				t.Fatalf("kubectl %s: %v: %s", args, err, out)
			}
		}
		if _, err := kubectl(t, bin, kc, "rollout", "status", "deployment", "web", "--timeout=2m"); err != nil {
			t.Fatal(err)
		}
		// The curl line, with the address `kubectl get service web` shows.
		ip := lbAddress("web")
		eventually(t, 30*time.Second, "web answering at "+ip, func() error {
			out, err := nettoolErr(bin, "", "get", "http://"+ip+"/")
			if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "web-") {
				return fmt.Errorf("%v: %q", err, out)
			}
			return nil
		})
	})

	t.Run("a worker the next run lacks is deleted by the cloud", func(t *testing.T) {
		if code := up.stop(t, syscall.SIGINT, 2*time.Minute); code != 0 {
			t.Fatalf("up exited %d:\n%s", code, up.output())
		}
		up = startUp(t, bin, append(args, "--nodes", "2")...)
		kc = up.waitReady(t, 5*time.Minute)
		eventually(t, 3*time.Minute, nodes[2]+" deleted", func() error {
			out, err := kubectl(t, bin, kc, "get", "nodes", "-o", "name")
			if err != nil {
				return err
			}
			if strings.Contains(out, nodes[2]) {
				return fmt.Errorf("nodes: %s", strings.Fields(out))
			}
			return nil
		})
		// Its pod range is free again and no route of the cloud points at it.
		out, _ := exec2("ip", "-4", "route", "show", "root", layout.ClusterCIDR.String(), "proto", "107")
		if n := strings.Count(out, "\n"); n != 1 {
			t.Errorf("%d routes of the cloud with one worker left, want 1:\n%s", n, out)
		}
	})
	if code := up.stop(t, syscall.SIGINT, 2*time.Minute); code != 0 {
		t.Fatalf("up exited %d:\n%s", code, up.output())
	}
	if out, _ := exec2("nft", "list", "table", "ip", layout.LoadBalancerTable); !strings.Contains(out, "No such file") {
		t.Errorf("load-balancer table left after stop: %s", out)
	}
}
