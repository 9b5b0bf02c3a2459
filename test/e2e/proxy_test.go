package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeparts/kubeparts/internal/localcluster"
)

// echoPods: a nettool server per node (HTTP 8080 answering its pod name,
// TCP echo 7000, UDP 9000), a client on the last worker, the Services each
// check needs, and a UDP Deployment for the conntrack check.
const proxyManifest = `apiVersion: v1
kind: Pod
metadata:
  name: echo-@NODE@
  labels: {app: echo, node: '@NODE@'}
spec:
  nodeName: '@NODE@'
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: docker.io/kubeparts/nettool:dev
    imagePullPolicy: Never
    args: ["serve", "--http", "8080", "--tcp", "7000", "--udp", "9000"]
    readinessProbe:
      httpGet: {port: 8080, path: /}
      periodSeconds: 1
`

const proxyServices = `apiVersion: v1
kind: Pod
metadata:
  name: tester
spec:
  nodeName: '@CLIENTNODE@'
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: docker.io/kubeparts/nettool:dev
    imagePullPolicy: Never
    args: ["serve", "--http", "8081"]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: NodePort
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: tcp, port: 7000, targetPort: 7000}
---
apiVersion: v1
kind: Service
metadata: {name: echo-headless}
spec:
  clusterIP: None
  selector: {app: echo}
  ports:
  - {name: http, port: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: echo}
  sessionAffinity: ClientIP
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  # LoadBalancer: only it gets a health check node port (no load balancer
  # assigns an address here; its NodePort serves).
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: echo, node: '@LOCALNODE@'}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: nothing}
spec:
  selector: {app: nobody}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: udp}
spec:
  replicas: 2
  selector: {matchLabels: {app: udp}}
  template:
    metadata: {labels: {app: udp}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: udp
        image: docker.io/kubeparts/nettool:dev
        imagePullPolicy: Never
        args: ["serve", "--http", "8080", "--udp", "9000"]
        readinessProbe:
          httpGet: {port: 8080, path: /}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: udp}
spec:
  selector: {app: udp}
  ports:
  - {name: dns, port: 53, targetPort: 9000, protocol: UDP}
`

// TestUpProxy drives kubeparts-proxy on `kubeparts up --nodes 3` with real
// traffic, as a user of Services would: ClusterIPs across nodes and by DNS
// name, NodePorts from the host and from another node, session affinity,
// externalTrafficPolicy Local (source kept, health check node port), a
// Service without endpoints refused, UDP conntrack entries of a gone pod
// removed, round-robin evenness, a kill -9 of a proxy under a live
// connection, Events for bad EndpointSlices, other tables left alone, and a
// second cluster on the same machine whose rules never meet the first's.
func TestUpProxy(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	if _, err := os.Stat(filepath.Join(bin, "nettool")); err != nil {
		t.Fatalf("bin/nettool missing (make build): %v", err)
	}
	// A table of "another component" that every sync must leave alone.
	other := "kp-e2e-other"
	nft(t, "", "add table ip "+other)
	nft(t, "", "add chain ip "+other+" keep")
	nft(t, "", "add rule ip "+other+" keep counter accept")
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", other).Run() })

	dataDir := tempDataDir(t)
	const name = "px"
	nodes := []string{name, name + "-worker1", name + "-worker2"}
	up := startUp(t, bin, "--data-dir", dataDir, "--port-base", "25443", "--node-name", name, "--nodes", "3",
		"--proxy-arg=--load-balancing=round-robin")
	kc := up.waitReady(t, 5*time.Minute)
	layout, err := localcluster.LayoutFor(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	netns := func(node string) string { // "" for the host's node
		if node == name {
			return ""
		}
		return "kp" + filepath.Base(layout.RunDir) + "-" + strings.TrimPrefix(node, name+"-")
	}
	ips := nodeIPs(t, bin, kc)

	var docs []string
	for _, n := range nodes {
		docs = append(docs, strings.ReplaceAll(proxyManifest, "@NODE@", n))
	}
	svcs := strings.NewReplacer("@CLIENTNODE@", nodes[2], "@LOCALNODE@", nodes[1]).Replace(proxyServices)
	apply(t, bin, kc, strings.Join(append(docs, svcs), "---\n"))
	eventually(t, 90*time.Second, "echo pods, tester and udp pods ready", func() error {
		out, err := kubectl(t, bin, kc, "get", "pods", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
		if err != nil {
			return err
		}
		if strings.Count(out, "=True") != 6 {
			return fmt.Errorf("pods: %s", out)
		}
		return nil
	})
	exec := func(args ...string) (string, error) {
		return kubectl(t, bin, kc, append([]string{"exec", "tester", "--", "/nettool"}, args...)...)
	}

	t.Run("ClusterIP by DNS name across nodes, round robin", func(t *testing.T) {
		// 999 connections from one client through its node's proxy: round
		// robin gives each of the three endpoints exactly a third.
		var out string
		eventually(t, 30*time.Second, "echo by name", func() error {
			var err error
			out, err = exec("get", "--count", "999", "http://echo.default.svc.cluster.local/")
			return err
		})
		counts := tally(out)
		for _, n := range nodes {
			if counts["echo-"+n] != 333 {
				t.Errorf("round robin over 999 connections: %v, want 333 each", counts)
				break
			}
		}
		t.Logf("round-robin evenness over 999 connections: %v", counts)
	})

	t.Run("the README's Services quick start", func(t *testing.T) {
		// The lines a newcomer copies from the README, run as they are.
		var last string
		for _, args := range readmeKubectl(t, "services-quickstart") {
			if strings.HasPrefix(args, "logs ") {
				last = args
				continue
			}
			if _, err := kubectl(t, bin, kc, strings.Fields(args)...); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 60*time.Second, "kubectl "+last, func() error {
			out, err := kubectl(t, bin, kc, strings.Fields(last)...)
			if err != nil {
				return err
			}
			if c := tally(out); c[""] > 0 || len(strings.Fields(out)) != 4 || !strings.HasPrefix(out, "web-") {
				return fmt.Errorf("%q: want four answers from the web pods", out)
			}
			return nil
		})
	})

	t.Run("hairpin: a pod reaches itself through its Service", func(t *testing.T) {
		// Round robin over three endpoints: every third connection comes back
		// to the calling pod, which answers only if it was masqueraded.
		out, err := kubectl(t, bin, kc, "exec", "echo-"+nodes[0], "--", "/nettool", "get", "--count", "9", "http://echo/")
		if err != nil {
			t.Fatal(err)
		}
		if c := tally(out); c["echo-"+nodes[0]] == 0 || len(strings.Fields(out)) != 9 {
			t.Errorf("answers %v: want 9, some from the calling pod itself", c)
		}
	})

	t.Run("headless Service has an A record per pod", func(t *testing.T) {
		want := podIPs(t, bin, kc, "app=echo")
		eventually(t, 30*time.Second, "headless lookup", func() error {
			out, err := exec("lookup", "echo-headless.default.svc.cluster.local")
			if err != nil {
				return err
			}
			if got := strings.Fields(out); strings.Join(got, ",") != strings.Join(want, ",") {
				return fmt.Errorf("A records %v, want the pods' %v", got, want)
			}
			return nil
		})
	})

	t.Run("NodePort from the host and from another node", func(t *testing.T) {
		port := jsonpath(t, bin, kc, "svc/echo", `{.spec.ports[?(@.name=="http")].nodePort}`)
		for _, n := range nodes {
			url := fmt.Sprintf("http://%s:%s/", ips[n], port)
			if out := nettool(t, bin, "", "get", "--count", "3", url); len(tally(out)) == 0 {
				t.Errorf("NodePort %s from the host: no answer", url)
			}
			// From worker1's network namespace to every node (node 0 and the other worker).
			if n != nodes[1] {
				if out := nettool(t, bin, netns(nodes[1]), "get", url); !strings.HasPrefix(out, "echo-") {
					t.Errorf("NodePort %s from node %s: %q", url, nodes[1], out)
				}
			}
		}
	})

	t.Run("session affinity keeps a client on one endpoint", func(t *testing.T) {
		out, err := exec("get", "--count", "20", "http://sticky/")
		if err != nil {
			t.Fatal(err)
		}
		if c := tally(out); len(c) != 1 {
			t.Errorf("ClientIP affinity: answers from %v, want one endpoint", c)
		}
	})

	t.Run("externalTrafficPolicy Local keeps the source and serves its health check", func(t *testing.T) {
		port := jsonpath(t, bin, kc, "svc/local", "{.spec.ports[0].nodePort}")
		hc := jsonpath(t, bin, kc, "svc/local", "{.spec.healthCheckNodePort}")
		worker := ips[nodes[1]]
		// The host (node px) reaches worker1 from its own InternalIP.
		out := nettool(t, bin, "", "get", fmt.Sprintf("http://%s:%s/clientip", worker, port))
		if host, _, _ := net.SplitHostPort(out); host != ips[nodes[0]] {
			t.Errorf("Local policy: the pod saw client %q, want the client node's address %s", out, ips[nodes[0]])
		}
		clusterPort := jsonpath(t, bin, kc, "svc/echo", `{.spec.ports[?(@.name=="http")].nodePort}`)
		out = nettool(t, bin, "", "get", fmt.Sprintf("http://%s:%s/", worker, clusterPort))
		if !strings.HasPrefix(out, "echo-") {
			t.Errorf("Cluster policy NodePort: %q", out)
		}
		for _, tc := range []struct {
			node  string
			code  int
			local int
		}{{nodes[1], http.StatusOK, 1}, {nodes[0], http.StatusServiceUnavailable, 0}, {nodes[2], http.StatusServiceUnavailable, 0}} {
			code, body := httpGet(t, fmt.Sprintf("http://%s:%s/", ips[tc.node], hc))
			var payload struct {
				Service             struct{ Namespace, Name string }
				LocalEndpoints      int
				ServiceProxyHealthy bool
			}
			if err := json.Unmarshal([]byte(body), &payload); err != nil || code != tc.code || payload.LocalEndpoints != tc.local ||
				payload.Service.Name != "local" || payload.Service.Namespace != "default" || !payload.ServiceProxyHealthy {
				t.Errorf("health check node port on %s: %d %s, want %d with localEndpoints %d", tc.node, code, body, tc.code, tc.local)
			}
		}
	})

	t.Run("a Service without endpoints is refused", func(t *testing.T) {
		_, err := exec("get", "http://nothing/")
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("from a pod: %v, want connection refused", err)
		}
		ip := jsonpath(t, bin, kc, "svc/nothing", "{.spec.clusterIP}")
		if out, err := nettoolErr(bin, "", "get", "http://"+ip+"/"); err == nil || !strings.Contains(out, "connection refused") {
			t.Errorf("from the host: %v %s, want connection refused", err, out)
		}
	})

	t.Run("the service range answers only where a Service port is", func(t *testing.T) {
		// Another port of a cluster IP is refused; an address of the range no
		// Service holds is dropped, never routed off the node (this machine's
		// gateway would answer any HTTP request).
		ip := jsonpath(t, bin, kc, "svc/echo", "{.spec.clusterIP}")
		if out, err := nettoolErr(bin, "", "get", "http://"+ip+":81/"); err == nil || !strings.Contains(out, "connection refused") {
			t.Errorf("cluster IP, port without a Service port: %v %s, want connection refused", err, out)
		}
		unallocated := layout.ServiceCIDR.IP.To4()
		free := net.IPv4(unallocated[0], unallocated[1], 255, 254).String()
		if out, err := nettoolErr(bin, "", "get", "--timeout", "2s", "http://"+free+"/"); err == nil {
			t.Errorf("unallocated cluster IP %s answered: %s", free, out)
		}
	})

	t.Run("UDP conntrack entries of a gone endpoint are removed", func(t *testing.T) {
		ip := jsonpath(t, bin, kc, "svc/udp", "{.spec.clusterIP}")
		send := func() string {
			out, err := exec("udp", "--sport", "40000", "--count", "1", ip+":53")
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(out)
		}
		first := send()
		if !strings.HasPrefix(first, "udp-") {
			t.Fatalf("UDP answer %q", first)
		}
		podIP := jsonpath(t, bin, kc, "pod/"+first, "{.status.podIP}")
		flows := func() string {
			out, _ := inNetns(netns(nodes[2]), "conntrack", "-L", "-p", "udp", "--orig-dst", ip, "--sport", "40000")
			return out
		}
		if !strings.Contains(flows(), "src="+podIP+" ") {
			t.Fatalf("no conntrack entry towards %s after the first datagram:\n%s", podIP, flows())
		}
		// The pod goes (as a CoreDNS pod does on a restart); the same client
		// keeps its source port, as resolvers do.
		if _, err := kubectl(t, bin, kc, "delete", "pod", first, "--wait=false"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the gone pod's conntrack entry removed", func() error {
			if f := flows(); strings.Contains(f, "src="+podIP+" ") {
				return fmt.Errorf("still there:\n%s", f)
			}
			return nil
		})
		if got := send(); !strings.HasPrefix(got, "udp-") || got == first {
			t.Errorf("after the pod went, the same flow got %q (the gone pod was %s)", got, first)
		}
		if _, err := kubectl(t, bin, kc, "scale", "deployment", "udp", "--replicas", "1"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "one udp pod left, answering the same flow", func() error {
			if n := len(podIPs(t, bin, kc, "app=udp")); n != 1 {
				return fmt.Errorf("%d udp pods", n)
			}
			if got := send(); !strings.HasPrefix(got, "udp-") {
				return fmt.Errorf("answer %q", got)
			}
			return nil
		})
	})

	t.Run("bad EndpointSlice gets an Event, the rest is served", func(t *testing.T) {
		apply(t, bin, kc, `apiVersion: v1
kind: Service
metadata: {name: manual}
spec:
  ports:
  - {name: http, port: 80}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: manual-1
  labels: {kubernetes.io/service-name: manual}
addressType: IPv4
ports:
- {name: wrong, port: 8080}
endpoints:
- addresses: ["10.1.2.3"]
`)
		eventually(t, 30*time.Second, "InvalidEndpointSlice Event on the Service", func() error {
			out, err := kubectl(t, bin, kc, "get", "events", "--field-selector", "involvedObject.name=manual", "-o", "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}")
			if err != nil {
				return err
			}
			if !strings.Contains(out, `InvalidEndpointSlice: EndpointSlice manual-1: port "wrong" (TCP) matches no port of the Service`) {
				return fmt.Errorf("events: %q", out)
			}
			return nil
		})
		if _, err := exec("get", "http://echo/"); err != nil {
			t.Errorf("echo after the bad slice: %v", err)
		}
	})

	t.Run("kill -9 of a proxy: connections and rules survive, it resyncs", func(t *testing.T) {
		apply(t, bin, kc, strings.ReplaceAll(`apiVersion: v1
kind: Pod
metadata: {name: holder}
spec:
  nodeName: '@NODE@'
  restartPolicy: Never
  containers:
  - name: hold
    image: docker.io/kubeparts/nettool:dev
    imagePullPolicy: Never
    args: ["hold", "--interval", "100ms", "echo:7000"]
`, "@NODE@", nodes[2]))
		okCount := func() int {
			out, _ := kubectl(t, bin, kc, "logs", "holder")
			if strings.Contains(out, "broken") {
				t.Fatalf("the held connection broke:\n%s", out)
			}
			return strings.Count(out, "ok ")
		}
		eventually(t, 30*time.Second, "held connection running", func() error {
			if n := okCount(); n < 5 {
				return fmt.Errorf("%d round trips", n)
			}
			return nil
		})
		pid := proxyPid(t, nodes[2])
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		before := okCount()
		if out, err := inNetns(netns(nodes[2]), "nft", "list", "map", "ip", layout.ProxyTable, "service-ips"); err != nil || !strings.Contains(out, jsonpath(t, bin, kc, "svc/echo", "{.spec.clusterIP}")) {
			t.Errorf("rules gone with the proxy: %v\n%s", err, out)
		}
		eventually(t, 30*time.Second, "connection alive and the proxy back", func() error {
			if n := okCount(); n < before+20 {
				return fmt.Errorf("%d round trips, %d at the kill", n, before)
			}
			if p := proxyPid(t, nodes[2]); p == pid {
				return fmt.Errorf("proxy not restarted")
			}
			return nil
		})
		if !strings.Contains(up.output(), "kubeparts-proxy-"+nodes[2]+" signal: killed; restarting it") {
			t.Errorf("up did not report the restart:\n%s", up.output())
		}
		// The restarted proxy follows changes made after it came back.
		apply(t, bin, kc, `apiVersion: v1
kind: Service
metadata: {name: after}
spec:
  selector: {app: echo}
  ports:
  - {port: 81, targetPort: 8080}
`)
		eventually(t, 30*time.Second, "a new Service through the restarted proxy", func() error {
			_, err := exec("get", "http://after:81/")
			return err
		})
	})

	t.Run("health and metrics as kube-proxy's", func(t *testing.T) {
		code, body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", 25443+12))
		if code != http.StatusOK || !strings.Contains(body, `"nodeEligible": true`) {
			t.Errorf("/healthz: %d %s", code, body)
		}
		_, metrics := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", 25443+13))
		for _, m := range []string{"kubeproxy_sync_proxy_rules_duration_seconds_count", "kubeproxy_network_programming_duration_seconds_count",
			"kubeproxy_sync_full_proxy_rules_duration_seconds_count", "kubeproxy_sync_proxy_rules_last_timestamp_seconds"} {
			if v := metricValue(metrics, m); v <= 0 {
				t.Errorf("%s = %v, want > 0", m, v)
			}
		}
	})

	t.Run("a second cluster on the machine keeps its own rules", func(t *testing.T) {
		dir2 := tempDataDir(t)
		up2 := startUp(t, bin, "--data-dir", dir2, "--port-base", "26443", "--node-name", "px2")
		kc2 := up2.waitReady(t, 3*time.Minute)
		l2, _ := localcluster.LayoutFor(dir2)
		if l2.ServiceCIDR.String() == layout.ServiceCIDR.String() || l2.ProxyTable == layout.ProxyTable {
			t.Fatalf("both clusters have service range %s and table %s", l2.ServiceCIDR, l2.ProxyTable)
		}
		var docs []string
		for i := range 3 {
			docs = append(docs, strings.ReplaceAll(strings.ReplaceAll(proxyManifest, "echo-@NODE@", fmt.Sprintf("echo-%d", i)), "@NODE@", "px2"))
		}
		apply(t, bin, kc2, strings.Join(append(docs, `apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports:
  - {port: 80, targetPort: 8080}
`), "---\n"))
		ip2 := jsonpath(t, bin, kc2, "svc/echo", "{.spec.clusterIP}")
		ip1 := jsonpath(t, bin, kc, "svc/echo", "{.spec.clusterIP}")
		// Random choice (this cluster's default) over 999 connections from the
		// host: every endpoint gets a fair share (each expects 333; below
		// 200 is about 9 standard deviations away).
		// First all three endpoints in the rules, then the measured run.
		eventually(t, 90*time.Second, "second cluster's echo from the host reaching three pods", func() error {
			out, err := nettoolErr(bin, "", "get", "--count", "30", "http://"+ip2+"/")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if c := tally(out); len(c) != 3 {
				return fmt.Errorf("endpoints reached: %v", c)
			}
			return nil
		})
		counts := tally(nettool(t, bin, "", "get", "--count", "999", "http://"+ip2+"/"))
		if total := counts["echo-0"] + counts["echo-1"] + counts["echo-2"]; len(counts) != 3 || total != 999 {
			t.Errorf("999 connections answered by %v", counts)
		}
		for pod, n := range counts {
			if n < 200 {
				t.Errorf("random choice: %s got %d of 999 (%v)", pod, n, counts)
			}
		}
		t.Logf("random evenness over 999 connections: %v", counts)
		t1 := nft(t, "", "list table ip "+layout.ProxyTable)
		t2 := nft(t, "", "list table ip "+l2.ProxyTable)
		if strings.Contains(t1, ip2+" ") || strings.Contains(t2, ip1+" ") {
			t.Errorf("a cluster's Service is in the other's table")
		}
		if up2.stop(t, syscall.SIGINT, 90*time.Second) != 0 {
			t.Errorf("second up exit:\n%s", up2.output())
		}
		if out, err := exec2("nft", "list", "table", "ip", l2.ProxyTable); err == nil {
			t.Errorf("the second cluster's table outlived it:\n%s", out)
		}
		// The first cluster is untouched by the second's start and stop.
		if _, err := exec("get", "http://echo/"); err != nil {
			t.Errorf("first cluster after the second stopped: %v", err)
		}
	})

	if out := nft(t, "", "list table ip "+other); !strings.Contains(out, "counter") {
		t.Errorf("another component's table was changed:\n%s", out)
	}
	if code := up.stop(t, syscall.SIGINT, 90*time.Second); code != 0 {
		t.Errorf("up exit %d:\n%s", code, up.output())
	}
	if out, err := exec2("nft", "list", "table", "ip", layout.ProxyTable); err == nil {
		t.Errorf("the proxy's table outlived the cluster:\n%s", out)
	}
	nft(t, "", "list table ip "+other)
	assertNothingLeft(t, dataDir)
}

func exec2(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// inNetns runs a command in a named network namespace ("" for the host's).
func inNetns(ns, name string, args ...string) (string, error) {
	if ns == "" {
		return exec2(name, args...)
	}
	return exec2("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

func nft(t *testing.T, ns, cmd string) string {
	t.Helper()
	out, err := inNetns(ns, "nft", strings.Fields(cmd)...)
	if err != nil {
		t.Fatalf("nft %s: %v: %s", cmd, err, out)
	}
	return out
}

// nettool runs bin/nettool in a network namespace and fails the test on error.
func nettool(t *testing.T, bin, ns string, args ...string) string {
	t.Helper()
	out, err := nettoolErr(bin, ns, args...)
	if err != nil {
		t.Fatalf("nettool %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(out)
}

func nettoolErr(bin, ns string, args ...string) (string, error) {
	return inNetns(ns, filepath.Join(bin, "nettool"), args...)
}

// tally counts the answers, one a line.
func tally(out string) map[string]int {
	c := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			c[l]++
		}
	}
	return c
}

func apply(t *testing.T, bin, kc, manifest string) {
	t.Helper()
	// Not t.TempDir(): subtest names put commas in its path, which kubectl -f splits.
	dir, err := os.MkdirTemp("", "kubeparts-e2e-manifest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	f := filepath.Join(dir, "manifest.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	// The default ServiceAccount appears a moment after the namespace.
	eventually(t, 60*time.Second, "kubectl apply", func() error {
		_, err := kubectl(t, bin, kc, "apply", "-f", f)
		return err
	})
}

func jsonpath(t *testing.T, bin, kc, obj, path string) string {
	t.Helper()
	out, err := kubectl(t, bin, kc, "get", obj, "-o", "jsonpath="+path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// nodeIPs maps each node to its InternalIP.
func nodeIPs(t *testing.T, bin, kc string) map[string]string {
	t.Helper()
	out, err := kubectl(t, bin, kc, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			ips[f[0]] = f[1]
		}
	}
	return ips
}

// podIPs are the sorted IPs of the pods matching selector.
func podIPs(t *testing.T, bin, kc, selector string) []string {
	t.Helper()
	out, err := kubectl(t, bin, kc, "get", "pods", "-l", selector, "--field-selector", "status.phase=Running", "-o", "jsonpath={.items[*].status.podIP}")
	if err != nil {
		t.Fatal(err)
	}
	ips := strings.Fields(out)
	// Sorted as nettool lookup prints them.
	for i := range ips {
		for j := i + 1; j < len(ips); j++ {
			if ips[j] < ips[i] {
				ips[i], ips[j] = ips[j], ips[i]
			}
		}
	}
	return ips
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// proxyPid finds the kubeparts-proxy of a node by its command line.
func proxyPid(t *testing.T, node string) int {
	t.Helper()
	out, _ := exec2("pgrep", "-f", "kubeparts-proxy .*--hostname-override="+node+" ")
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil {
			// nsenter execs the proxy: the pid is the proxy's.
			if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(cmd)) == "kubeparts-proxy" {
				return pid
			}
		}
	}
	return 0
}

func metricValue(text, name string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return -1
}

// TestUpStockProxy: `up --stock=proxy` runs the stock kube-proxy in nftables
// mode instead (the comparison the upstream e2e runs and benchmarks rely
// on): a Service answers by name from a pod through kube-proxy's table, and
// stopping the cluster removes that table (kube-proxy --cleanup).
func TestUpStockProxy(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	dataDir := tempDataDir(t)
	up := startUp(t, bin, "--data-dir", dataDir, "--port-base", "28443", "--node-name", "sp", "--stock", "proxy")
	kc := up.waitReady(t, 3*time.Minute)
	if !strings.Contains(up.output(), "(kube-proxy)") {
		t.Errorf("up does not say it runs kube-proxy:\n%s", up.output())
	}
	apply(t, bin, kc, strings.ReplaceAll(proxyManifest, "@NODE@", "sp")+`---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports:
  - {port: 80, targetPort: 8080}
`)
	eventually(t, 90*time.Second, "echo through kube-proxy by name", func() error {
		out, err := kubectl(t, bin, kc, "exec", "echo-sp", "--", "/nettool", "get", "http://echo.default.svc.cluster.local/")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "echo-sp" {
			return fmt.Errorf("answer %q", out)
		}
		return nil
	})
	if out, err := exec2("nft", "list", "map", "ip", "kube-proxy", "service-ips"); err != nil || !strings.Contains(out, jsonpath(t, bin, kc, "svc/echo", "{.spec.clusterIP}")) {
		t.Errorf("kube-proxy's table lacks the Service: %v\n%s", err, out)
	}
	if code := up.stop(t, syscall.SIGINT, 90*time.Second); code != 0 {
		t.Errorf("up exit %d:\n%s", code, up.output())
	}
	if out, err := exec2("nft", "list", "table", "ip", "kube-proxy"); err == nil {
		t.Errorf("kube-proxy's table outlived the cluster:\n%s", out)
	}
	assertNothingLeft(t, dataDir)
}

// readmeKubectl returns the arguments of the kubectl lines (comments cut)
// of the README block between <!-- name ... --> and <!-- /name -->.
func readmeKubectl(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(readmeBlock(t, name), "\n") {
		line, _, _ = strings.Cut(line, "#")
		if args, ok := strings.CutPrefix(strings.TrimSpace(line), "kubectl "); ok {
			out = append(out, strings.TrimSpace(args))
		}
	}
	return out
}
