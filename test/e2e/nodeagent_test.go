package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/kubeparts/kubeparts/internal/localcluster"
)

const agentPod = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: on-agent, namespace: default}
  spec:
    initContainers: [{name: setup, image: registry.k8s.io/pause:3.10, imagePullPolicy: Never, command: ["/pause"], args: ["-v"]}]
    containers: [{name: c, image: registry.k8s.io/pause:3.10, imagePullPolicy: Never, env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}],
      resources: {requests: {cpu: 100m}, limits: {cpu: 200m, memory: 64Mi}}}]
# Exits at once: restarted under restartPolicy Always until it is crash-looping.
- apiVersion: v1
  kind: Pod
  metadata: {name: crasher, namespace: default}
  spec:
    containers: [{name: c, image: registry.k8s.io/pause:3.10, imagePullPolicy: Never, command: ["/pause"], args: ["-v"]}]
# A shell: logs on both streams, exec, and an HTTP server to port-forward to.
- apiVersion: v1
  kind: Pod
  metadata: {name: shell, namespace: default}
  spec:
    containers: [{name: sh, image: busybox:1.35, imagePullPolicy: Never,
      command: ["sh", "-c", "echo hello from busybox; echo to-stderr >&2; sleep 0.5; echo last line; mkdir -p /www; echo forwarded > /www/index.html; exec httpd -f -p 8080 -h /www"]}]
# Probes: readiness from a file, liveness over HTTP; both can be broken with exec.
- apiVersion: v1
  kind: Pod
  metadata: {name: probed, namespace: default}
  spec:
    containers: [{name: web, image: busybox:1.35, imagePullPolicy: Never,
      command: ["sh", "-c", "mkdir -p /www; echo up > /www/index.html; touch /tmp/ready; exec httpd -f -p 8080 -h /www"],
      ports: [{name: http, containerPort: 8080}],
      readinessProbe: {exec: {command: ["cat", "/tmp/ready"]}, periodSeconds: 1, failureThreshold: 1},
      livenessProbe: {httpGet: {port: http, path: /index.html}, periodSeconds: 1, failureThreshold: 2}}]
# Termination messages: from the file, and from the log on failure.
- apiVersion: v1
  kind: Pod
  metadata: {name: message, namespace: default}
  spec:
    restartPolicy: Never
    containers:
    - {name: file, image: busybox:1.35, imagePullPolicy: Never, command: ["sh", "-c", "echo custom message > /dev/termination-log; exit 3"]}
    - {name: logs, image: busybox:1.35, imagePullPolicy: Never, terminationMessagePolicy: FallbackToLogsOnError, command: ["sh", "-c", "echo from the log; exit 1"]}
# Bad input: a command that does not exist, an image that is not there.
- apiVersion: v1
  kind: Pod
  metadata: {name: bad, namespace: default}
  spec:
    containers:
    - {name: nocmd, image: busybox:1.35, imagePullPolicy: Never, command: ["/does-not-exist"]}
    - {name: noimage, image: example.invalid/none:1, imagePullPolicy: Never}
# Graceful deletion: a preStop hook that takes 2 s, a process that ignores SIGTERM,
# a 4 s grace period.
- apiVersion: v1
  kind: Pod
  metadata: {name: graceful, namespace: default}
  spec:
    terminationGracePeriodSeconds: 4
    containers: [{name: c, image: busybox:1.35, imagePullPolicy: Never, command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"],
      lifecycle: {preStop: {exec: {command: ["sleep", "2"]}}}}]
# Volumes: a ConfigMap (that exists only later), a Secret, the downward API,
# an emptyDir shared with an init container, a hostPath a preStop hook writes
# to, the projected service account token; a resourceFieldRef env.
- apiVersion: v1
  kind: Secret
  metadata: {name: creds, namespace: default}
  stringData: {password: s3cret}
- apiVersion: v1
  kind: Pod
  metadata: {name: vols, namespace: default, labels: {tier: backend}}
  spec:
    terminationGracePeriodSeconds: 5
    initContainers: [{name: init, image: busybox:1.35, imagePullPolicy: Never, command: ["sh", "-c", "echo from-init > /shared/note"],
      volumeMounts: [{name: shared, mountPath: /shared}]}]
    containers:
    - name: c
      image: busybox:1.35
      imagePullPolicy: Never
      command: ["sleep", "3600"]
      env: [{name: MEM_LIMIT_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}]
      resources: {limits: {memory: 64Mi}}
      lifecycle: {preStop: {exec: {command: ["sh", "-c", "echo stopped-gracefully > /host/prestop"]}}}
      volumeMounts:
      - {name: cfg, mountPath: /etc/cfg}
      - {name: creds, mountPath: /etc/creds}
      - {name: info, mountPath: /etc/info}
      - {name: shared, mountPath: /shared}
      - {name: host, mountPath: /host}
    volumes:
    - {name: cfg, configMap: {name: late-config}}
    - {name: creds, secret: {secretName: creds}}
    - {name: info, downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}
    - {name: shared, emptyDir: {}}
    - {name: host, hostPath: {path: HOSTDIR, type: DirectoryOrCreate}}
# A sidecar (restartable init container) keeps running while the next init
# container and the app container start.
- apiVersion: v1
  kind: Pod
  metadata: {name: sidecar, namespace: default}
  spec:
    terminationGracePeriodSeconds: 2
    initContainers:
    - {name: side, image: busybox:1.35, imagePullPolicy: Never, restartPolicy: Always, command: ["sleep", "3600"]}
    - {name: setup, image: busybox:1.35, imagePullPolicy: Never, command: ["true"]}
    containers: [{name: app, image: busybox:1.35, imagePullPolicy: Never, command: ["sleep", "3600"]}]
# Host network: the node's IP, probed there.
- apiVersion: v1
  kind: Pod
  metadata: {name: hostnet, namespace: default}
  spec:
    hostNetwork: true
    terminationGracePeriodSeconds: 2
    containers: [{name: c, image: busybox:1.35, imagePullPolicy: Never,
      command: ["sh", "-c", "mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 21460 -h /www"],
      readinessProbe: {httpGet: {port: 21460}, periodSeconds: 1}}]
# Attach: a process reading its stdin.
- apiVersion: v1
  kind: Pod
  metadata: {name: attachable, namespace: default}
  spec:
    containers: [{name: c, image: busybox:1.35, imagePullPolicy: Never, stdin: true,
      command: ["sh", "-c", "while read l; do echo got:$l; done"]}]
# Exits 0 under restartPolicy Never: the pod Succeeded.
- apiVersion: v1
  kind: Pod
  metadata: {name: once, namespace: default}
  spec:
    restartPolicy: Never
    containers: [{name: c, image: registry.k8s.io/pause:3.10, imagePullPolicy: Never, command: ["/pause"], args: ["-v"]}]
`

// TestUpNodeAgent: `kubeparts up` runs kubeparts-nodeagent (the default)
// instead of the kubelet; the node registers Ready under
// NodeRestriction, a pod runs on containerd with a CNI address and the stock
// status fields, deletion removes it, and Ctrl-C leaves nothing behind.
func TestUpNodeAgent(t *testing.T) {
	needRoot(t)
	bin := binDir(t)
	dataDir := tempDataDir(t)
	up := startUp(t, bin, "--data-dir", dataDir, "--port-base", "21443")
	kc := up.waitReady(t, 4*time.Minute)
	if !strings.Contains(up.output(), "kubeparts-nodeagent") {
		t.Fatalf("up did not start kubeparts-nodeagent:\n%s", up.output())
	}
	manifest := filepath.Join(dataDir, "agent-pod.yaml")
	hostDir := filepath.Join(dataDir, "hostpath")
	if err := os.WriteFile(manifest, []byte(strings.ReplaceAll(agentPod, "HOSTDIR", hostDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "create pod", func() error {
		_, err := kubectl(t, bin, kc, "apply", "-f", manifest)
		return err
	})
	eventually(t, 90*time.Second, "pod running on containerd", func() error {
		out, err := kubectl(t, bin, kc, "get", "pod", "on-agent", "-o",
			"jsonpath={.status.phase} {.status.podIP} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].ready} {.status.initContainerStatuses[0].state.terminated.reason}")
		f := strings.Fields(out)
		if err != nil || len(f) != 5 || f[0] != "Running" || !strings.HasPrefix(f[1], "10.2") || !strings.HasPrefix(f[2], "containerd://") || f[3] != "true" || f[4] != "Completed" {
			return &unexpected{out}
		}
		return nil
	})
	// What containerd was asked to run: the environment and the cgroup limits.
	id, err := kubectl(t, bin, kc, "get", "pod", "on-agent", "-o", "jsonpath={.status.containerStatuses[0].containerID}")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := localcluster.LayoutFor(dataDir)
	info, err := exec.Command("ctr", "--address", filepath.Join(l.RunDir, "containerd.sock"), "--namespace", "k8s.io",
		"containers", "info", strings.TrimPrefix(id, "containerd://")).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr containers info: %v %s", err, info)
	}
	for _, want := range []string{`"POD_NAME=on-agent"`, `"quota": 20000`, `"limit": 67108864`, `"shares": 102`, "/kubepods/burstable/pod"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("container spec lacks %s", want)
		}
	}
	eventually(t, 90*time.Second, "sidecar running beside the app, init container completed", func() error {
		out, _ := kubectl(t, bin, kc, "get", "pod", "sidecar", "-o", `jsonpath={.status.initContainerStatuses[0].started} {.status.initContainerStatuses[0].state.running.startedAt} {.status.initContainerStatuses[1].state.terminated.reason} {.status.containerStatuses[0].ready} {.status.conditions[?(@.type=="Initialized")].status}`)
		f := strings.Fields(out)
		if len(f) != 5 || f[0] != "true" || f[2] != "Completed" || f[3] != "true" || f[4] != "True" {
			return &unexpected{out}
		}
		return nil
	})
	eventually(t, 60*time.Second, "host-network pod Ready at the node's IP", func() error {
		out, _ := kubectl(t, bin, kc, "get", "pod", "hostnet", "-o", `jsonpath={.status.podIP} {.status.hostIP} {.status.conditions[?(@.type=="Ready")].status}`)
		if f := strings.Fields(out); len(f) != 3 || f[0] != f[1] || f[2] != "True" {
			return &unexpected{out}
		}
		return nil
	})
	// The pod's own cgroup carries the pod-level limits (one container: its own).
	uid, _ := kubectl(t, bin, kc, "get", "pod", "on-agent", "-o", "jsonpath={.metadata.uid}")
	podCgroup := filepath.Join(l.CgroupRoot, "kubepods", "burstable", "pod"+uid)
	for file, want := range map[string]string{"cpu/cpu.cfs_quota_us": "20000", "cpu/cpu.shares": "102", "memory/memory.limit_in_bytes": "67108864"} {
		controller, name, _ := strings.Cut(file, "/")
		var got []byte
		for _, root := range []string{"/sys/fs/cgroup/" + controller, "/sys/fs/cgroup/cpu,cpuacct"} {
			if got, err = os.ReadFile(filepath.Join(root, podCgroup, name)); err == nil {
				break
			}
		}
		if _, v2 := os.Stat("/sys/fs/cgroup/cgroup.controllers"); v2 == nil {
			break // cgroup v2 has other files; not checked here
		}
		if strings.TrimSpace(string(got)) != want {
			t.Errorf("pod cgroup %s = %q (%v), want %s", name, got, err, want)
		}
	}
	// The QoS classes' cgroups rank BestEffort lowest, as the kubelet's QoS manager does.
	eventually(t, 30*time.Second, "besteffort cpu.shares 2", func() error {
		for _, root := range []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"} {
			if data, err := os.ReadFile(filepath.Join(root, l.CgroupRoot, "kubepods", "besteffort", "cpu.shares")); err == nil {
				if strings.TrimSpace(string(data)) != "2" {
					return &unexpected{string(data)}
				}
				return nil
			}
		}
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
			return nil // cgroup v2: cpu.weight, not checked here
		}
		return &unexpected{"no besteffort cgroup"}
	})
	eventually(t, 90*time.Second, "restartPolicy Never pod Succeeded", func() error {
		out, err := kubectl(t, bin, kc, "get", "pod", "once", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.reason}")
		if err != nil || out != "Succeeded Completed" {
			return &unexpected{out}
		}
		return nil
	})
	eventually(t, 90*time.Second, "exiting container crash-looping with restarts", func() error {
		out, err := kubectl(t, bin, kc, "get", "pod", "crasher", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].state.waiting.reason} {.status.containerStatuses[0].lastState.terminated.reason}")
		f := strings.Fields(out)
		if err != nil || len(f) != 4 || f[0] != "Running" || f[1] == "0" || f[2] != "CrashLoopBackOff" || f[3] != "Completed" {
			return &unexpected{out}
		}
		return nil
	})
	testKubeletAPI(t, bin, kc)
	testLifecycle(t, bin, kc)
	testStaticPod(t, bin, kc, dataDir)
	testVolumes(t, bin, kc, hostDir)
	testSecurityContext(t, bin, kc, dataDir)
	testInitFailuresAndClaims(t, bin, kc, dataDir)
	if out, err := kubectl(t, bin, kc, "delete", "pod", "on-agent", "crasher", "once", "shell", "attachable", "sidecar", "hostnet", "probed", "message", "bad", "--timeout=60s"); err != nil {
		t.Fatalf("delete: %v %s", err, out)
	}
	if code := up.stop(t, syscall.SIGINT, 90*time.Second); code != 0 {
		t.Errorf("up exited %d:\n%s", code, up.output())
	}
	assertNothingLeft(t, dataDir)
}

// testKubeletAPI goes through kube-apiserver to the agent's kubelet API, with
// the stock clients: kubectl logs (both streams, --previous, --tail), exec
// with stdin, port-forward, and kubectl top reading /metrics/resource
// through kubeparts-apiserver.
func testKubeletAPI(t *testing.T, bin, kc string) {
	eventually(t, 90*time.Second, "kubectl logs", func() error {
		out, err := kubectl(t, bin, kc, "logs", "shell")
		if err != nil || !strings.Contains(out, "hello from busybox\n") || !strings.Contains(out, "to-stderr\n") || !strings.Contains(out, "last line\n") {
			return &unexpected{out}
		}
		return nil
	})
	if out, err := kubectl(t, bin, kc, "logs", "shell", "--tail=1", "--timestamps"); err != nil || !strings.HasSuffix(out, "Z last line\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("logs --tail=1 --timestamps: %q %v", out, err)
	}
	if out, err := kubectl(t, bin, kc, "logs", "crasher", "--previous"); err != nil || out != "pause (kubeparts)\n" {
		t.Errorf("logs --previous: %q %v", out, err)
	}
	if out, err := kubectl(t, bin, kc, "logs", "once", "--previous"); err == nil || !strings.Contains(out, "previous terminated container") {
		t.Errorf("logs --previous without a previous container: %q %v", out, err)
	}
	cmd := exec.Command(filepath.Join(bin, "kubectl"), "--kubeconfig", kc, "exec", "-i", "shell", "--", "sh", "-c", "tr a-z A-Z; echo $HOSTNAME")
	cmd.Stdin = strings.NewReader("piped through exec\n")
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "PIPED THROUGH EXEC\nshell\n" {
		t.Errorf("exec -i: %q %v", out, err)
	}
	if out, err := kubectl(t, bin, kc, "exec", "shell", "--", "sh", "-c", "exit 3"); err == nil || !strings.Contains(out, "exit code 3") {
		t.Errorf("exec exit status: %q %v", out, err)
	}
	// kubectl debug: an ephemeral container in the target container's process namespace.
	if out, err := kubectl(t, bin, kc, "debug", "shell", "--image=busybox:1.35", "--image-pull-policy=Never", "-c", "dbg", "--target=sh", "--",
		"sh", "-c", "pidof httpd >/dev/null && echo sees-target; echo debugging"); err != nil {
		t.Errorf("kubectl debug: %v %s", err, out)
	}
	eventually(t, 60*time.Second, "ephemeral container ran", func() error {
		out, err := kubectl(t, bin, kc, "logs", "shell", "-c", "dbg")
		if err != nil || out != "sees-target\ndebugging\n" {
			return &unexpected{out}
		}
		if st, _ := kubectl(t, bin, kc, "get", "pod", "shell", "-o", "jsonpath={.status.ephemeralContainerStatuses[0].state.terminated.reason}"); st != "Completed" {
			return &unexpected{"ephemeral container state " + st}
		}
		return nil
	})
	// A TTY: the container's process sees a terminal.
	if out, err := execTTY(kc, "default", "shell", "sh", []string{"tty"}); err != nil || !strings.HasPrefix(out, "/dev/pts/") {
		t.Errorf("exec with a TTY: %q %v", out, err)
	}
	// attach to a running process's stdin and stdout.
	eventually(t, 60*time.Second, "kubectl attach", func() error {
		cmd := exec.Command(filepath.Join(bin, "kubectl"), "--kubeconfig", kc, "attach", "-i", "attachable")
		cmd.Stdin = strings.NewReader("hello attach\n")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "got:hello attach") {
			return &unexpected{fmt.Sprintf("%s %v", out, err)}
		}
		return nil
	})
	// port-forward: a local port to the pod's 8080, over the API server.
	pf := exec.Command(filepath.Join(bin, "kubectl"), "--kubeconfig", kc, "port-forward", "pod/shell", "21580:8080")
	var pfOut strings.Builder
	pf.Stdout, pf.Stderr = &pfOut, &pfOut
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
	eventually(t, 30*time.Second, "port-forward", func() error {
		resp, err := http.Get("http://127.0.0.1:21580/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "forwarded\n" {
			return &unexpected{string(body)}
		}
		return nil
	})
	// Straight to the agent's port: no credentials is 401; a service account
	// token without nodes/* rights is authenticated (TokenReview) and then
	// refused (SubjectAccessReview) with the kubelet's message.
	addr, err := kubectl(t, bin, kc, "get", "node", "-o", "jsonpath={.items[0].status.addresses[0].address}:{.items[0].status.daemonEndpoints.kubeletEndpoint.Port}")
	if err != nil {
		t.Fatal(err)
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := insecure.Get("https://" + addr + "/pods")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous GET /pods: %v %v", resp, err)
	}
	var token string
	eventually(t, 60*time.Second, "service account token", func() error {
		token, err = kubectl(t, bin, kc, "create", "token", "default")
		return err
	})
	req, _ := http.NewRequest("GET", "https://"+addr+"/containerLogs/default/shell/sh", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(token))
	resp, err = insecure.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "Forbidden (user=system:serviceaccount:default:default, verb=get, resource=nodes, subresource=proxy)") {
		t.Errorf("unprivileged token: %d %s", resp.StatusCode, body)
	}
	eventually(t, 90*time.Second, "kubectl top pod from the agent's /metrics/resource", func() error {
		out, err := kubectl(t, bin, kc, "top", "pod", "shell", "--no-headers")
		if f := strings.Fields(out); err != nil || len(f) != 3 || f[0] != "shell" || !strings.HasSuffix(f[2], "Mi") {
			return &unexpected{out}
		}
		return nil
	})
}

// testLifecycle: probes failing and recovering, termination messages, the
// stock waiting reasons for bad input, graceful deletion.
func testLifecycle(t *testing.T, bin, kc string) {
	jsonpath := func(pod, path string) string {
		out, _ := kubectl(t, bin, kc, "get", "pod", pod, "-o", "jsonpath="+path)
		return out
	}
	ready := func(want string) func() error {
		return func() error {
			if got := jsonpath("probed", `{.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[0].ready}`); got != want+" "+strings.ToLower(want) {
				return &unexpected{got}
			}
			return nil
		}
	}
	eventually(t, 60*time.Second, "probed pod Ready", ready("True"))
	if _, err := kubectl(t, bin, kc, "exec", "probed", "--", "rm", "/tmp/ready"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "readiness failure makes the pod not Ready", ready("False"))
	if _, err := kubectl(t, bin, kc, "exec", "probed", "--", "touch", "/tmp/ready"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "readiness recovers", ready("True"))
	if _, err := kubectl(t, bin, kc, "exec", "probed", "--", "rm", "/www/index.html"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "liveness failure restarts the container", func() error {
		if got := jsonpath("probed", "{.status.containerStatuses[0].restartCount}"); got == "0" || got == "" {
			return &unexpected{got}
		}
		return nil
	})
	eventually(t, 30*time.Second, "Unhealthy and Killing events", func() error {
		out, err := kubectl(t, bin, kc, "get", "events", "--field-selector", "involvedObject.name=probed", "-o", "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}")
		if err != nil || !strings.Contains(out, "Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 404") ||
			!strings.Contains(out, "Unhealthy: Readiness probe failed: cat: can't open '/tmp/ready'") || !strings.Contains(out, "Killing: Container web failed liveness probe, will be restarted") {
			return &unexpected{out}
		}
		return nil
	})
	eventually(t, 60*time.Second, "termination messages", func() error {
		got := jsonpath("message", "{.status.phase}|{.status.containerStatuses[0].state.terminated.message}|{.status.containerStatuses[1].state.terminated.message}|{.status.containerStatuses[0].state.terminated.exitCode}")
		if got != "Failed|custom message\n|from the log\n|3" {
			return &unexpected{got}
		}
		return nil
	})
	eventually(t, 60*time.Second, "stock reasons for a missing command and a missing image", func() error {
		nocmd := jsonpath("bad", "{.status.containerStatuses[0].state.waiting.reason} {.status.containerStatuses[0].lastState.terminated.reason}")
		noimage := jsonpath("bad", "{.status.containerStatuses[1].state.waiting.reason}")
		if (nocmd != "RunContainerError " && nocmd != "CrashLoopBackOff StartError") || noimage != "ErrImageNeverPull" {
			return &unexpected{nocmd + " / " + noimage}
		}
		return nil
	})
	// The agent keeps serving everything else: the shell pod still answers.
	if out, err := kubectl(t, bin, kc, "exec", "shell", "-c", "sh", "--", "echo", "alive"); err != nil || out != "alive\n" {
		t.Errorf("exec after bad pods: %q %v", out, err)
	}
	eventually(t, 60*time.Second, "graceful pod running", func() error {
		if got := jsonpath("graceful", "{.status.phase}"); got != "Running" {
			return &unexpected{got}
		}
		return nil
	})
	start := time.Now()
	if out, err := kubectl(t, bin, kc, "delete", "pod", "graceful", "--timeout=60s"); err != nil {
		t.Fatalf("delete graceful: %v %s", err, out)
	}
	// The preStop hook (2 s) and then SIGTERM, ignored, until the grace period
	// (4 s) ends in SIGKILL: neither immediate nor waiting on a process that never exits.
	if took := time.Since(start); took < 3*time.Second || took > 30*time.Second {
		t.Errorf("graceful deletion took %s, want about the 4 s grace period", took)
	}
}

// testStaticPod: a manifest in the node's manifest directory runs with a
// mirror pod (annotation, Node owner); deleting the mirror brings it back
// without restarting the container; removing the file stops the pod.
func testStaticPod(t *testing.T, bin, kc, dataDir string) {
	l, _ := localcluster.LayoutFor(dataDir)
	manifest := filepath.Join(l.Node, "manifests", "static-web.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: static-web, namespace: default}\nspec:\n  containers: [{name: c, image: busybox:1.35, imagePullPolicy: Never, command: [sleep, \"3600\"]}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	node, err := kubectl(t, bin, kc, "get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil {
		t.Fatal(err)
	}
	name := "static-web-" + node
	var first string
	eventually(t, 60*time.Second, "mirror pod Running", func() error {
		out, _ := kubectl(t, bin, kc, "get", "pod", name, "-o", `jsonpath={.status.phase} {.metadata.ownerReferences[0].kind} {.metadata.annotations.kubernetes\.io/config\.mirror} {.status.containerStatuses[0].containerID}`)
		f := strings.Fields(out)
		if len(f) != 4 || f[0] != "Running" || f[1] != "Node" || f[2] == "" {
			return &unexpected{out}
		}
		first = f[3]
		return nil
	})
	if out, err := kubectl(t, bin, kc, "delete", "pod", name, "--wait=false"); err != nil {
		t.Fatalf("delete mirror: %v %s", err, out)
	}
	eventually(t, 60*time.Second, "mirror pod back, same container", func() error {
		out, _ := kubectl(t, bin, kc, "get", "pod", name, "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].containerID} {.metadata.deletionTimestamp}")
		if out != "Running "+first+" " {
			return &unexpected{out + " (want container " + first + ")"}
		}
		return nil
	})
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "mirror pod gone with its manifest", func() error {
		out, err := kubectl(t, bin, kc, "get", "pod", name, "--ignore-not-found", "-o", "name")
		if err != nil || out != "" {
			return &unexpected{out}
		}
		return nil
	})
}

// testVolumes: a missing ConfigMap holds the pod in ContainerCreating with
// the stock FailedMount event until it exists; then every volume holds what
// it should, a ConfigMap update reaches the running container, the
// service account token authenticates as the pod's service account, and
// the preStop hook writes through the hostPath on deletion.
func testVolumes(t *testing.T, bin, kc, hostDir string) {
	inPod := func(args ...string) (string, error) {
		return kubectl(t, bin, kc, append([]string{"exec", "vols", "-c", "c", "--"}, args...)...)
	}
	eventually(t, 60*time.Second, "FailedMount for the missing ConfigMap", func() error {
		out, _ := kubectl(t, bin, kc, "get", "events", "--field-selector", "involvedObject.name=vols,reason=FailedMount", "-o", "jsonpath={.items[*].message}")
		if !strings.Contains(out, `MountVolume.SetUp failed for volume "cfg" : configmap "late-config" not found`) {
			return &unexpected{out}
		}
		return nil
	})
	// It has an init container: its containers wait PodInitializing, as the kubelet shows them.
	if out, _ := kubectl(t, bin, kc, "get", "pod", "vols", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].state.waiting.reason}"); out != "Pending PodInitializing" {
		t.Errorf("pod with a missing ConfigMap volume: %q, want Pending PodInitializing", out)
	}
	if out, err := kubectl(t, bin, kc, "create", "configmap", "late-config", "--from-literal=greeting=hello"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	eventually(t, 90*time.Second, "pod with volumes running", func() error {
		if out, _ := kubectl(t, bin, kc, "get", "pod", "vols", "-o", "jsonpath={.status.phase}"); out != "Running" {
			return &unexpected{out}
		}
		return nil
	})
	for _, tt := range []struct{ cmd, want string }{
		{"cat /etc/cfg/greeting", "hello"},
		{"cat /etc/creds/password", "s3cret"},
		// The cloud labels the node's region, and kube-apiserver's
		// PodTopologyLabels admission copies a node's topology labels onto
		// the pods bound to it, as on any cloud.
		{"cat /etc/info/labels", `tier="backend"` + "\n" + `topology.kubernetes.io/region="local"`},
		{"cat /shared/note", "from-init\n"},
		{"echo $MEM_LIMIT_MI", "64\n"},
		{"ls /var/run/secrets/kubernetes.io/serviceaccount", "ca.crt\nnamespace\ntoken\n"},
		{"cat /var/run/secrets/kubernetes.io/serviceaccount/namespace", "default"},
		{"touch /etc/cfg/x 2>/dev/null || echo read-only", "read-only\n"},
	} {
		if out, err := inPod("sh", "-c", tt.cmd); err != nil || !strings.HasSuffix(out, tt.want) {
			t.Errorf("%s: %q %v, want %q", tt.cmd, out, err, tt.want)
		}
	}
	token, err := inPod("cat", "/var/run/secrets/kubernetes.io/serviceaccount/token")
	if err != nil {
		t.Fatal(err)
	}
	// Only the token: a kubeconfig with the admin's certificate would win over it.
	server, err := kubectl(t, bin, kc, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
	if err != nil {
		t.Fatal(err)
	}
	whoami := exec.Command(filepath.Join(bin, "kubectl"), "--kubeconfig", os.DevNull, "--server", server, "--insecure-skip-tls-verify", "--token", token,
		"auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	if out, err := whoami.CombinedOutput(); err != nil || string(out) != "system:serviceaccount:default:default" {
		t.Errorf("projected token: %q %v", out, err)
	}
	if out, err := kubectl(t, bin, kc, "create", "configmap", "late-config", "--from-literal=greeting=updated", "--dry-run=client", "-o", "yaml"); err == nil {
		f := filepath.Join(filepath.Dir(hostDir), "late-config.yaml")
		if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := kubectl(t, bin, kc, "apply", "-f", f); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	eventually(t, 150*time.Second, "ConfigMap update reaches the running container", func() error {
		if out, _ := inPod("cat", "/etc/cfg/greeting"); out != "updated" {
			return &unexpected{out}
		}
		return nil
	})
	if out, err := kubectl(t, bin, kc, "delete", "pod", "vols", "--timeout=60s"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if data, err := os.ReadFile(filepath.Join(hostDir, "prestop")); err != nil || string(data) != "stopped-gracefully\n" {
		t.Errorf("preStop through the hostPath: %q %v", data, err)
	}
}

// execTTY runs command in a container with a TTY through kube-apiserver, as
// `kubectl exec -t` does from a terminal (which a test does not have).
func execTTY(kubeconfig, namespace, pod, container string, command []string) (string, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return "", err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	req := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: command, Stdout: true, TTY: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return "", err
	}
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Tty: true})
	return out.String(), err
}

const initAndClaimPods = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: init-fails-never, namespace: default}
  spec:
    restartPolicy: Never
    initContainers: [{name: setup, image: busybox:1.35, imagePullPolicy: Never, command: ["sh", "-c", "exit 1"]}]
    containers: [{name: app, image: busybox:1.35, imagePullPolicy: Never, command: ["sleep", "3600"]}]
- apiVersion: v1
  kind: Pod
  metadata: {name: init-fails-always, namespace: default}
  spec:
    initContainers: [{name: setup, image: busybox:1.35, imagePullPolicy: Never, command: ["sh", "-c", "exit 1"]}]
    containers: [{name: app, image: busybox:1.35, imagePullPolicy: Never, command: ["sleep", "3600"]}]
- apiVersion: v1
  kind: PersistentVolume
  metadata: {name: agent-hostpath-pv}
  spec:
    capacity: {storage: 1Gi}
    accessModes: [ReadWriteOnce]
    storageClassName: manual
    hostPath: {path: CLAIMDIR, type: DirectoryOrCreate}
- apiVersion: v1
  kind: PersistentVolumeClaim
  metadata: {name: agent-claim, namespace: default}
  spec:
    accessModes: [ReadWriteOnce]
    storageClassName: manual
    resources: {requests: {storage: 1Gi}}
- apiVersion: v1
  kind: Pod
  metadata: {name: claimant, namespace: default}
  spec:
    restartPolicy: Never
    containers: [{name: c, image: busybox:1.35, imagePullPolicy: Never, command: ["sh", "-c", "echo written-through-the-claim > /data/out"],
      volumeMounts: [{name: data, mountPath: /data}]}]
    volumes: [{name: data, persistentVolumeClaim: {claimName: agent-claim}}]
`

// testInitFailuresAndClaims: a failing init container fails its pod under
// restartPolicy Never and crash-loops otherwise, in kubectl's STATUS
// column as under the kubelet; a pod writes through a claim bound to a
// hostPath PersistentVolume; the Node reports the machine's identity and
// ephemeral storage.
func testInitFailuresAndClaims(t *testing.T, bin, kc, dataDir string) {
	claimDir := filepath.Join(dataDir, "claim")
	manifest := filepath.Join(dataDir, "init-claims.yaml")
	if err := os.WriteFile(manifest, []byte(strings.ReplaceAll(initAndClaimPods, "CLAIMDIR", claimDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, bin, kc, "apply", "-f", manifest); err != nil {
		t.Fatalf("apply: %v %s", err, out)
	}
	for _, tc := range []struct{ pod, status, phase string }{
		{"init-fails-never", "Init:Error", "Failed"},
		{"init-fails-always", "Init:CrashLoopBackOff", "Pending"},
	} {
		eventually(t, 90*time.Second, tc.pod+" "+tc.status, func() error {
			out, err := kubectl(t, bin, kc, "get", "pod", tc.pod, "--no-headers")
			f := strings.Fields(out)
			if err != nil || len(f) < 3 || f[2] != tc.status {
				return &unexpected{out}
			}
			phase, _ := kubectl(t, bin, kc, "get", "pod", tc.pod, "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].state.waiting.reason}")
			if phase != tc.phase+" PodInitializing" {
				return &unexpected{"phase and app state: " + phase}
			}
			return nil
		})
	}
	eventually(t, 90*time.Second, "pod wrote through its claim", func() error {
		data, err := os.ReadFile(filepath.Join(claimDir, "out"))
		if err != nil || string(data) != "written-through-the-claim\n" {
			phase, _ := kubectl(t, bin, kc, "get", "pod", "claimant", "-o", "jsonpath={.status.phase}")
			return &unexpected{fmt.Sprintf("%q %v (pod %s)", data, err, phase)}
		}
		return nil
	})
	out, err := kubectl(t, bin, kc, "get", "nodes", "-o", "jsonpath={.items[0].status.nodeInfo.osImage}|{.items[0].status.nodeInfo.kernelVersion}|{.items[0].status.nodeInfo.bootID}|{.items[0].status.allocatable.ephemeral-storage}")
	if f := strings.Split(out, "|"); err != nil || len(f) != 4 || f[0] == "" || f[1] == "" || f[2] == "" || f[3] == "" {
		t.Errorf("node info and ephemeral-storage: %q %v", out, err)
	}
	if out, err := kubectl(t, bin, kc, "delete", "pod", "init-fails-never", "init-fails-always", "claimant", "--timeout=60s"); err != nil {
		t.Errorf("delete: %v %s", err, out)
	}
}
