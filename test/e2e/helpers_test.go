package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubeparts/kubeparts/internal/localcluster"
	"github.com/kubeparts/kubeparts/test/integration/framework"
)

// binDir is where `make build upstream` put kubeparts and the stock binaries.
func binDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KUBEPARTS_BIN")
	if dir == "" {
		dir = filepath.Join("..", "..", "bin")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"kubeparts", "kubectl", "kube-apiserver", "etcd", "kubelet"} {
		if _, err := os.Stat(filepath.Join(abs, b)); err != nil {
			t.Fatalf("%s missing in %s: run `make build upstream` (or `make test`)", b, abs)
		}
	}
	return abs
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the node (containerd, kubelet) needs root")
	}
}

// upProcess is a running `kubeparts up`.
type upProcess struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	// ready receives the KUBECONFIG path from the export line.
	ready chan string
}

func startUp(t testing.TB, bin string, args ...string) *upProcess {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "kubeparts"), append([]string{"up"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	u := &upProcess{cmd: cmd, done: make(chan struct{}), ready: make(chan string, 1)}
	cmd.Stderr = &lockedWriter{u}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			line := s.Text()
			u.mu.Lock()
			u.out.WriteString(line + "\n")
			u.mu.Unlock()
			if path, ok := strings.CutPrefix(line, "export KUBECONFIG="); ok {
				u.ready <- path
			}
		}
		_ = cmd.Wait()
		close(u.done)
	}()
	t.Cleanup(func() {
		if u.cmd.ProcessState == nil {
			_ = u.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-u.done:
			case <-time.After(90 * time.Second):
				_ = u.cmd.Process.Kill()
			}
		}
	})
	return u
}

type lockedWriter struct{ u *upProcess }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.u.mu.Lock()
	defer w.u.mu.Unlock()
	return w.u.out.Write(p)
}

func (u *upProcess) output() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.out.String()
}

// assertStoppedCleanly: every process up stopped exited on its SIGTERM, none
// had to be killed at its stop timeout (kube-apiserver did, held open by the
// pods' watches; etcd's leader waited out a handoff to stopping peers).
func assertStoppedCleanly(t testing.TB, u *upProcess) {
	t.Helper()
	for line := range strings.Lines(u.output()) {
		if strings.Contains(line, "of SIGTERM: killed") {
			t.Errorf("up stopped a process by force: %s", strings.TrimSpace(line))
		}
	}
}

// waitReady returns the kubeconfig path once up printed its export line.
func (u *upProcess) waitReady(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case path := <-u.ready:
		return path
	case <-u.done:
		t.Fatalf("kubeparts up exited before the cluster was ready:\n%s", u.output())
	case <-time.After(timeout):
		t.Fatalf("kubeparts up not ready after %s:\n%s", timeout, u.output())
	}
	return ""
}

// stop sends sig and waits for up to exit, returning its exit code.
func (u *upProcess) stop(t testing.TB, sig syscall.Signal, timeout time.Duration) int {
	t.Helper()
	_ = u.cmd.Process.Signal(sig)
	select {
	case <-u.done:
	case <-time.After(timeout):
		t.Fatalf("kubeparts up still running %s after %v:\n%s", timeout, sig, u.output())
	}
	return u.cmd.ProcessState.ExitCode()
}

// runUp runs an `up` that is expected to fail fast and returns its exit code and output.
func runUp(t testing.TB, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kubeparts"), append([]string{"up"}, args...)...)
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("kubeparts up %v did not exit within 60s:\n%s", args, out)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// kubectl runs the real kubectl against the cluster.
func kubectl(t testing.TB, bin, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// eventually polls f until it succeeds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	framework.Eventually(t, timeout, what, f)
}

// clusterProcesses lists live processes that belong to the cluster in dataDir, found
// independently of the code under test: by a path of the cluster in their arguments,
// or by membership of the node's pod cgroup.
func clusterProcesses(t testing.TB, dataDir string) []string {
	t.Helper()
	l, err := localcluster.LayoutFor(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			continue // exited, waiting for its parent to reap it
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cgroup, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		args := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(args, l.DataDir) || strings.Contains(args, l.RunDir) || strings.Contains(string(cgroup), l.CgroupRoot) {
			found = append(found, fmt.Sprintf("%d: %s", pid, args))
		}
	}
	return found
}

// mountsUnder lists mount points below dir.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// assertNothingLeft checks that no process and no mount of the cluster survived.
func assertNothingLeft(t testing.TB, dataDir string) {
	t.Helper()
	eventually(t, 10*time.Second, "cluster processes gone", func() error {
		if left := clusterProcesses(t, dataDir); len(left) > 0 {
			return fmt.Errorf("still running:\n%s", strings.Join(left, "\n"))
		}
		return nil
	})
	if m := mountsUnder(t, dataDir); len(m) > 0 {
		t.Errorf("mounts left under the data dir: %v", m)
	}
}

// scrape reads a secure /metrics endpoint the way Prometheus does: with the token of a
// ServiceAccount bound to system:monitoring (the endpoint reviews it with the apiserver).
func scrape(t testing.TB, bin, kubeconfig string, port int) string {
	t.Helper()
	for _, args := range [][]string{
		{"-n", "kube-system", "create", "serviceaccount", "scraper"},
		{"create", "clusterrolebinding", "scraper", "--clusterrole=system:monitoring", "--serviceaccount=kube-system:scraper"},
	} {
		if out, err := kubectl(t, bin, kubeconfig, args...); err != nil && !strings.Contains(out, "AlreadyExists") {
			t.Fatal(err)
		}
	}
	token, err := kubectl(t, bin, kubeconfig, "-n", "kube-system", "create", "token", "scraper")
	if err != nil {
		t.Fatal(err)
	}
	// The endpoint's certificate is self-signed.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/metrics", port), nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(token))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s: %s", resp.Status, body)
	}
	return string(body)
}

// leaseHeldByPod waits until an in-cluster component's pod leads (its Lease in kube-system).
func leaseHeldByPod(t *testing.T, bin, kc, lease, selector string) {
	t.Helper()
	framework.LeaseHeldByPod(t, 90*time.Second, func(args ...string) (string, error) { return kubectl(t, bin, kc, args...) }, lease, selector)
}

// readmeBlock is the README's text between <!-- name ... --> and <!-- /name -->: the
// commands tests run as a newcomer would.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- "+name)
	block, _, ok2 := strings.Cut(block, "<!-- /"+name+" -->")
	if !ok || !ok2 {
		t.Fatalf("README has no %s block", name)
	}
	return block
}
