package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// securityPods exercise the securityContext as containerd and runc enforce
// it: users and groups, fsGroup on an emptyDir, read-only root, dropped
// capabilities, no_new_privs, seccomp, a safe sysctl; privileged with the
// host's processes; runAsNonRoot against an image running as root; an
// unsafe sysctl the node does not allow. And a pod's names: hostname,
// subdomain, hostAliases in its /etc/hosts, its dnsConfig as resolv.conf.
const securityPods = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: secure, namespace: default}
  spec:
    terminationGracePeriodSeconds: 1
    securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000],
      seccompProfile: {type: RuntimeDefault}, sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "80"}]}
    containers: [{name: c, image: busybox:1.35, imagePullPolicy: Never, command: ["sleep", "3600"],
      securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}},
      volumeMounts: [{name: scratch, mountPath: /scratch}]}]
    volumes: [{name: scratch, emptyDir: {}}]
- apiVersion: v1
  kind: Pod
  metadata: {name: privileged, namespace: default}
  spec:
    terminationGracePeriodSeconds: 1
    hostPID: true
    containers: [{name: c, image: busybox:1.35, imagePullPolicy: Never, command: ["sleep", "3600"], securityContext: {privileged: true}}]
- apiVersion: v1
  kind: Pod
  metadata: {name: nonroot, namespace: default}
  spec:
    containers: [{name: c, image: busybox:1.35, imagePullPolicy: Never, command: ["sleep", "3600"], securityContext: {runAsNonRoot: true}}]
- apiVersion: v1
  kind: Pod
  metadata: {name: named, namespace: default}
  spec:
    terminationGracePeriodSeconds: 1
    hostname: db
    subdomain: backend
    readinessGates: [{conditionType: example.com/gate}]
    hostAliases: [{ip: 192.0.2.1, hostnames: [foo.local, bar.local]}]
    dnsPolicy: None
    dnsConfig: {nameservers: [192.0.2.53], searches: [x.example], options: [{name: ndots, value: "2"}]}
    containers: [{name: c, image: busybox:1.35, imagePullPolicy: Never, command: ["sleep", "3600"]}]
- apiVersion: v1
  kind: Pod
  metadata: {name: resizable, namespace: default}
  spec:
    terminationGracePeriodSeconds: 1
    containers: [{name: c, image: busybox:1.35, imagePullPolicy: Never, command: ["sleep", "3600"],
      resources: {requests: {cpu: 100m, memory: 32Mi}, limits: {cpu: 200m, memory: 64Mi}}}]
- apiVersion: v1
  kind: Pod
  metadata: {name: unsafe-sysctl, namespace: default}
  spec:
    securityContext: {sysctls: [{name: net.core.somaxconn, value: "1024"}]}
    containers: [{name: c, image: busybox:1.35, imagePullPolicy: Never, command: ["sleep", "3600"]}]
`

func testSecurityContext(t *testing.T, bin, kc, dataDir string) {
	manifest := filepath.Join(dataDir, "security-pods.yaml")
	if err := os.WriteFile(manifest, []byte(securityPods), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, bin, kc, "apply", "-f", manifest); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, name := range []string{"secure", "privileged", "named", "resizable"} {
		eventually(t, 90*time.Second, name+" running", func() error {
			if out, _ := kubectl(t, bin, kc, "get", "pod", name, "-o", "jsonpath={.status.phase}"); out != "Running" {
				return &unexpected{out}
			}
			return nil
		})
	}
	in := func(pod, cmd string) string {
		container := "c"
		if pod == "shell" { // testUpNodeAgent's, with an ephemeral container beside
			container = "sh"
		}
		out, err := kubectl(t, bin, kc, "exec", pod, "-c", container, "--", "sh", "-c", cmd)
		if err != nil {
			t.Errorf("%s: %s: %v %s", pod, cmd, err, out)
		}
		return strings.TrimSpace(out)
	}
	status := func(pod, field string) string {
		return in(pod, "sed -n 's/^"+field+":[[:space:]]*//p' /proc/self/status")
	}
	for _, tc := range []struct{ cmd, want string }{
		{"id -u", "1000"},
		{"id -g", "3000"},
		{"touch /in-root 2>/dev/null || echo read-only", "read-only"},
		{"touch /scratch/f && stat -c %g /scratch/f", "2000"}, // the emptyDir's setgid fsGroup
		{"cat /proc/sys/net/ipv4/ip_unprivileged_port_start", "80"},
		{"head -c 3 /var/run/secrets/kubernetes.io/serviceaccount/token", "eyJ"}, // the token is the pod user's
	} {
		if got := in("secure", tc.cmd); got != tc.want {
			t.Errorf("secure: %s = %q, want %q", tc.cmd, got, tc.want)
		}
	}
	if groups := " " + in("secure", "id -G") + " "; !strings.Contains(groups, " 2000 ") || !strings.Contains(groups, " 4000 ") {
		t.Errorf("secure: groups %q lack the fsGroup 2000 and supplemental group 4000", groups)
	}
	for field, want := range map[string]string{"CapEff": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"} {
		if got := status("secure", field); got != want {
			t.Errorf("secure: %s %q, want %q", field, got, want)
		}
	}
	// Privileged: more capabilities than the runtime's default set (the
	// unprivileged root shell pod's), and the host's processes in view.
	if priv, plain := status("privileged", "CapEff"), status("shell", "CapEff"); priv == plain || priv == "" {
		t.Errorf("privileged CapEff %q, unprivileged root %q", priv, plain)
	}
	// The pattern does not match its own grep's command line.
	const findAgent = "grep -l 'kubeparts-nodeagen[t]' /proc/[0-9]*/cmdline 2>/dev/null | head -1"
	if got := in("privileged", findAgent); got == "" {
		t.Error("hostPID pod does not see the node agent's process")
	}
	if got := in("shell", findAgent); got != "" {
		t.Errorf("a pod without hostPID sees the host's processes: %s", got)
	}
	// Names and resolver.
	podIP, _ := kubectl(t, bin, kc, "get", "pod", "named", "-o", "jsonpath={.status.podIP}")
	if got := in("named", "hostname"); got != "db" {
		t.Errorf("hostname %q, want db", got)
	}
	hosts := in("named", "cat /etc/hosts")
	for _, want := range []string{"# Kubernetes-managed hosts file.\n", "\n" + podIP + "\tdb.backend.default.svc.cluster.local\tdb\n", "\n192.0.2.1\tfoo.local\tbar.local"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("/etc/hosts lacks %q:\n%s", want, hosts)
		}
	}
	resolv := in("named", "cat /etc/resolv.conf")
	for _, want := range []string{"nameserver 192.0.2.53", "search x.example", "options ndots:2"} {
		if !strings.Contains(resolv, want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	// A readiness gate holds Ready until another controller sets its
	// condition, which the agent's status writes keep.
	get := func(pod, jsonpath string) string {
		out, _ := kubectl(t, bin, kc, "get", "pod", pod, "-o", "jsonpath="+jsonpath)
		return out
	}
	eventually(t, 30*time.Second, "Ready held by the readiness gate", func() error {
		if out := get("named", `{.status.conditions[?(@.type=="ContainersReady")].status} {.status.conditions[?(@.type=="Ready")].reason}`); out != "True ReadinessGatesNotReady" {
			return &unexpected{out}
		}
		return nil
	})
	if out, err := kubectl(t, bin, kc, "patch", "pod", "named", "--subresource=status", "--type=json",
		"-p", `[{"op":"add","path":"/status/conditions/-","value":{"type":"example.com/gate","status":"True"}}]`); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	eventually(t, 30*time.Second, "Ready once the gate is True", func() error {
		if out := get("named", `{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="example.com/gate")].status}`); out != "True True" {
			return &unexpected{out}
		}
		return nil
	})
	if out := get("named", "{.metadata.generation} {.status.observedGeneration}"); out != "1 1" {
		t.Errorf("generation and observedGeneration: %q", out)
	}
	// up runs cluster DNS (CoreDNS, kube-dns) and gives the agent --cluster-dns:
	// a ClusterFirst pod's resolver is the kube-dns Service. (Without
	// --cluster-dns the agent falls back with MissingClusterDNS: unit-tested
	// in nodeagent/pods.)
	dnsIP, err := kubectl(t, bin, kc, "-n", "kube-system", "get", "svc", "kube-dns", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	if resolv := in("secure", "cat /etc/resolv.conf"); !strings.Contains(resolv, "nameserver "+strings.TrimSpace(dnsIP)+"\n") {
		t.Errorf("ClusterFirst pod's resolv.conf does not name kube-dns %s:\n%s", dnsIP, resolv)
	}
	testResize(t, bin, kc, in, get)
	uid, _ := kubectl(t, bin, kc, "get", "pod", "nonroot", "-o", "jsonpath={.metadata.uid}")
	eventually(t, 60*time.Second, "runAsNonRoot refused for an image running as root", func() error {
		out, _ := kubectl(t, bin, kc, "get", "pod", "nonroot", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}")
		if out != `CreateContainerConfigError|container has runAsNonRoot and image will run as root (pod: "nonroot_default(`+uid+`)", container: c)` {
			return &unexpected{out}
		}
		return nil
	})
	eventually(t, 60*time.Second, "unsafe sysctl rejected", func() error {
		out, _ := kubectl(t, bin, kc, "get", "pod", "unsafe-sysctl", "-o", "jsonpath={.status.phase}|{.status.reason}|{.status.message}")
		if out != `Failed|SysctlForbidden|Pod was rejected: forbidden sysctl: "net.core.somaxconn" not allowlisted` {
			return &unexpected{out}
		}
		return nil
	})
	// Bound by spec.nodeName past the scheduler, too big for the node: the
	// agent's resource admission refuses it as the kubelet's does.
	nodeName, err := kubectl(t, bin, kc, "get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil {
		t.Fatal(err)
	}
	tooBig := filepath.Join(dataDir, "too-big.yaml")
	if err := os.WriteFile(tooBig, []byte(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "too-big", "namespace": "default"},
  "spec": {"nodeName": "`+nodeName+`", "containers": [{"name": "c", "image": "busybox:1.35", "imagePullPolicy": "Never",
  "command": ["sleep", "3600"], "resources": {"requests": {"cpu": "100"}}}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, bin, kc, "apply", "-f", tooBig); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	eventually(t, 60*time.Second, "a pod bound past the scheduler is refused: OutOfcpu", func() error {
		out := get("too-big", "{.status.phase}|{.status.reason}|{.status.message}")
		if !strings.HasPrefix(out, "Failed|OutOfcpu|Pod was rejected: Node didn't have enough resource: cpu, requested: 100000, used: ") {
			return &unexpected{out}
		}
		return nil
	})
	if out, err := kubectl(t, bin, kc, "delete", "-f", tooBig, "--timeout=60s"); err != nil {
		t.Errorf("delete: %v %s", err, out)
	}
	if out, err := kubectl(t, bin, kc, "delete", "-f", manifest, "--timeout=60s"); err != nil {
		t.Errorf("delete: %v %s", err, out)
	}
}

// testResize resizes a running container in place through the resize
// subresource, as VPA or an operator does: the new CPU limit reaches its
// cgroup without a restart and the status says so; a resize the node has
// no room for now is Deferred and changes nothing.
func testResize(t *testing.T, bin, kc string, in func(pod, cmd string) string, get func(pod, jsonpath string) string) {
	quota := "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"
	if got := in("resizable", quota); got != "20000" {
		t.Errorf("CPU quota before the resize %q, want 20000", got)
	}
	patch := func(cpuRequest, cpuLimit string) {
		p := fmt.Sprintf(`{"spec":{"containers":[{"name":"c","resources":{"requests":{"cpu":%q},"limits":{"cpu":%q}}}]}}`, cpuRequest, cpuLimit)
		if out, err := kubectl(t, bin, kc, "patch", "pod", "resizable", "--subresource", "resize", "--patch", p); err != nil {
			t.Fatalf("resize: %v %s", err, out)
		}
	}
	patch("150m", "300m")
	eventually(t, 60*time.Second, "resize actuated", func() error {
		out := get("resizable", `{.metadata.generation} {.status.observedGeneration} {.status.containerStatuses[0].resources.limits.cpu} {.status.containerStatuses[0].allocatedResources.cpu} {.status.containerStatuses[0].restartCount} {.status.conditions[?(@.type=="PodResizeInProgress")].status}{.status.conditions[?(@.type=="PodResizePending")].status}`)
		if out != "2 2 300m 150m 0 " {
			return &unexpected{out}
		}
		return nil
	})
	if got := in("resizable", quota); got != "30000" {
		t.Errorf("CPU quota after the resize %q, want 30000", got)
	}
	// All of the node's CPU: kube-apiserver lets it through (it refuses
	// more than the node's allocatable itself), but on-agent's 100m are in
	// the way, so the resize waits.
	allocatable, err := kubectl(t, bin, kc, "get", "nodes", "-o", "jsonpath={.items[0].status.allocatable.cpu}")
	if err != nil {
		t.Fatal(err)
	}
	patch(allocatable, allocatable)
	eventually(t, 60*time.Second, "a resize the other pods leave no room for is Deferred", func() error {
		out := get("resizable", `{.status.conditions[?(@.type=="PodResizePending")].reason}|{.status.conditions[?(@.type=="PodResizePending")].message}|{.status.containerStatuses[0].resources.limits.cpu}`)
		if !strings.HasPrefix(out, "Deferred|Node didn't have enough resource: cpu, requested: ") || !strings.HasSuffix(out, "|300m") {
			return &unexpected{out}
		}
		return nil
	})
}
