package swap

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeparts/kubeparts/internal/controllernames"
)

// What kubeadm writes (trimmed to the lines that matter here).
const (
	kubeadmScheduler = `apiVersion: v1
kind: Pod
metadata:
  name: kube-scheduler
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-scheduler
    - --kubeconfig=/etc/kubernetes/scheduler.conf
    - --leader-elect=true
    image: registry.k8s.io/kube-scheduler:v1.36.3
    name: kube-scheduler
  hostNetwork: true
`
	kubeadmControllerManager = `apiVersion: v1
kind: Pod
metadata:
  name: kube-controller-manager
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-controller-manager
    - --cluster-signing-key-file=/etc/kubernetes/pki/ca.key
    - --controllers=*,bootstrapsigner,tokencleaner
    - --leader-elect=true
    image: registry.k8s.io/kube-controller-manager:v1.36.3
    name: kube-controller-manager
  hostNetwork: true
`
)

func newHost(t *testing.T, files map[string]string) Host {
	t.Helper()
	dir := t.TempDir()
	h := Host{ManifestsDir: filepath.Join(dir, "manifests"), ConfigDir: dir}
	if err := os.MkdirAll(h.ManifestsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, conf := range []string{"scheduler.conf", "kubeparts-controller-manager.conf"} {
		if err := os.WriteFile(filepath.Join(dir, conf), []byte("kubeconfig"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(h.ManifestsDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func manifests(t *testing.T, h Host) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(h.ManifestsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(h.ManifestsDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(data)
	}
	return out
}

// fakeHealth is in charge or not, as told, and records what it was asked.
type fakeHealth struct {
	leader string
	fail   map[string]bool // pod -> never in charge
	waited []string
}

func (f *fakeHealth) Leader(context.Context, string) (string, error) { return f.leader, nil }
func (f *fakeHealth) WaitInCharge(_ context.Context, pod, lease, previous string) error {
	f.waited = append(f.waited, pod+" "+lease+" "+previous)
	if f.fail[pod] {
		return errors.New("pod kube-system/" + pod + "-n1 is not Ready (c: CrashLoopBackOff)")
	}
	return nil
}

var clock = func() time.Time { return time.Date(2026, 12, 6, 17, 0, 0, 0, time.UTC) }

func TestPlanErrors(t *testing.T) {
	for _, tc := range []struct {
		name, role, to string
		files          map[string]string
		want           string
	}{
		{"role without a static pod", "proxy", ToKubeparts, nil, "Helm chart"},
		{"unknown target", RoleScheduler, "both", map[string]string{"kube-scheduler.yaml": kubeadmScheduler}, `--to "both"`},
		{"no scheduler on this host", RoleScheduler, ToKubeparts, nil, "no scheduler runs as a static pod"},
		{"no controller manager on this host", RoleControllerManager, ToKubeparts, nil, "kube-controller-manager does not run as a static pod"},
		{"back to stock without a backup", RoleScheduler, ToStock, map[string]string{"kubeparts-scheduler.yaml": "x"}, "no saved kube-scheduler.yaml"},
		{"already kubeparts", RoleScheduler, ToKubeparts, map[string]string{"kubeparts-scheduler.yaml": "x"}, "already runs kubeparts"},
		{"already stock", RoleScheduler, ToStock, map[string]string{"kube-scheduler.yaml": kubeadmScheduler}, "already runs stock"},
		{"controller manager without its kubeconfig", RoleControllerManager, ToKubeparts, map[string]string{"kube-controller-manager.yaml": kubeadmControllerManager, "-kubeparts-controller-manager.conf": ""}, "kubeconfig is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, tc.files)
			for name := range tc.files {
				if conf, ok := strings.CutPrefix(name, "-"); ok { // a file this case removes
					_ = os.Remove(filepath.Join(h.ConfigDir, conf))
				}
			}
			_, err := NewPlan(h, tc.role, tc.to)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// The scheduler there and back: kubeparts' static pod (and its profile) in, the stock
// manifest out and saved; then the saved one back.
func TestSchedulerThereAndBack(t *testing.T) {
	h := newHost(t, map[string]string{"kube-scheduler.yaml": kubeadmScheduler, "etcd.yaml": "etcd"})
	h.Image = "registry.example/kubeparts-scheduler:v1"
	p, err := NewPlan(h, RoleScheduler, ToKubeparts)
	if err != nil {
		t.Fatal(err)
	}
	var diff bytes.Buffer
	p.Diff(&diff)
	for _, want := range []string{"+++ /dev/null", "-    - kube-scheduler", "--- /dev/null", "+    image: registry.example/kubeparts-scheduler:v1", "resourceName: kube-scheduler"} {
		if !strings.Contains(diff.String(), want) {
			t.Errorf("diff lacks %q:\n%s", want, diff.String())
		}
	}
	if got := manifests(t, h); len(got) != 2 {
		t.Fatalf("the plan alone changed files: %v", got)
	}
	health := &fakeHealth{leader: "n1_stock"}
	res, err := p.Apply(context.Background(), h, health, time.Minute, clock, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	got := manifests(t, h)
	if _, ok := got["kube-scheduler.yaml"]; ok || !strings.Contains(got["kubeparts-scheduler.yaml"], "hostPath: {path: "+h.ConfigDir+"/kubeparts-scheduler.yaml") || got["etcd.yaml"] != "etcd" {
		t.Fatalf("manifests after the swap: %v", keys(got))
	}
	if saved, err := os.ReadFile(filepath.Join(res.Backup, "kube-scheduler.yaml")); err != nil || string(saved) != kubeadmScheduler {
		t.Errorf("backup of kube-scheduler.yaml: %q %v", saved, err)
	}
	if health.waited[0] != "kubeparts-scheduler kube-system/kube-scheduler n1_stock" {
		t.Errorf("waited for %q, want kubeparts-scheduler to take the stock Lease from its holder", health.waited)
	}

	back, err := NewPlan(h, RoleScheduler, ToStock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := back.Apply(context.Background(), h, &fakeHealth{}, time.Minute, func() time.Time { return clock().Add(time.Hour) }, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	got = manifests(t, h)
	if got["kube-scheduler.yaml"] != kubeadmScheduler || got["kubeparts-scheduler.yaml"] != "" {
		t.Errorf("after swapping back: %v", keys(got))
	}
}

// A new piece that never comes up: every file is put back as it was, and the
// error says so.
func TestRollbackWhenTheNewPieceFails(t *testing.T) {
	h := newHost(t, map[string]string{"kube-scheduler.yaml": kubeadmScheduler})
	p, err := NewPlan(h, RoleScheduler, ToKubeparts)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	res, err := p.Apply(context.Background(), h, &fakeHealth{fail: map[string]bool{"kubeparts-scheduler": true}}, time.Minute, clock, &log)
	if err == nil || !strings.Contains(err.Error(), "CrashLoopBackOff") || !strings.Contains(err.Error(), "rolled back: kube-scheduler is in charge again") {
		t.Fatalf("error %v, want the cause and the rollback", err)
	}
	if !res.RolledBack {
		t.Error("result does not say it rolled back")
	}
	got := manifests(t, h)
	if len(got) != 1 || got["kube-scheduler.yaml"] != kubeadmScheduler {
		t.Errorf("after the rollback: %v, want kube-scheduler.yaml alone, as it was", keys(got))
	}
	if _, err := os.Stat(filepath.Join(h.ConfigDir, "kubeparts-scheduler.yaml")); !os.IsNotExist(err) {
		t.Errorf("the profile written for the failed swap is still there (%v)", err)
	}
}

// The controller manager: kubeparts' beside the stock one, whose --controllers
// switches off exactly kubeparts' controllers and keeps kubeadm's own entries.
func TestControllerManagerControllers(t *testing.T) {
	off := "-" + strings.Join(controllernames.StockNames(), ",-")
	for _, tc := range []struct {
		name, manifest, wantLine string
	}{
		{"kubeadm's list", kubeadmControllerManager, "    - --controllers=*,bootstrapsigner,tokencleaner," + off + "\n"},
		{"no --controllers", strings.Replace(kubeadmControllerManager, "    - --controllers=*,bootstrapsigner,tokencleaner\n", "", 1), "    - --controllers=*," + off + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, map[string]string{"kube-controller-manager.yaml": tc.manifest})
			p, err := NewPlan(h, RoleControllerManager, ToKubeparts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Apply(context.Background(), h, &fakeHealth{}, time.Minute, clock, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			got := manifests(t, h)
			if !strings.Contains(got["kube-controller-manager.yaml"], tc.wantLine) {
				t.Errorf("kube-controller-manager.yaml:\n%s\nwant the line %q", got["kube-controller-manager.yaml"], tc.wantLine)
			}
			if !strings.Contains(got["kubeparts-controller-manager.yaml"], "--controllers=*") {
				t.Errorf("kubeparts-controller-manager.yaml missing or wrong: %q", got["kubeparts-controller-manager.yaml"])
			}
			if _, err := NewPlan(h, RoleControllerManager, ToKubeparts); !errors.As(err, new(ErrNothingToDo)) {
				t.Errorf("second swap to kubeparts: %v, want nothing to do", err)
			}
			back, err := NewPlan(h, RoleControllerManager, ToStock)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := back.Apply(context.Background(), h, &fakeHealth{}, time.Minute, clock, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			got = manifests(t, h)
			if _, ours := got["kubeparts-controller-manager.yaml"]; ours || strings.Contains(got["kube-controller-manager.yaml"], "-deployment-controller") {
				t.Errorf("after swapping back: %v\n%s", keys(got), got["kube-controller-manager.yaml"])
			}
		})
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A manifest that is a mount point (kind's extraMounts) cannot be renamed over or
// removed: the plan is refused before anything is touched, naming the file; the same
// host without the mount swaps.
func TestMountedManifestRefused(t *testing.T) {
	h := newHost(t, map[string]string{"kube-controller-manager.yaml": kubeadmControllerManager, "kubeparts-controller-manager.yaml": "kind's"})
	ours := filepath.Join(h.ManifestsDir, "kubeparts-controller-manager.yaml")
	info := filepath.Join(t.TempDir(), "mountinfo")
	escaped := strings.ReplaceAll(ours, " ", `\040`)
	if err := os.WriteFile(info, []byte("22 1 0:21 / / rw - ext4 /dev/vda rw\n612 22 0:5 /kubeparts-controller-manager.yaml "+escaped+" ro - ext4 /dev/vdb ro\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(old string) { mountInfo = old }(mountInfo)
	mountInfo = info
	_, err := NewPlan(h, RoleControllerManager, ToStock)
	if err == nil || !strings.Contains(err.Error(), ours+" is a mount point") {
		t.Fatalf("error %v, want one naming the mounted %s", err, ours)
	}
	if err := os.WriteFile(info, []byte("22 1 0:21 / / rw - ext4 /dev/vda rw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(h, RoleControllerManager, ToStock)
	if err != nil || len(p.Changes) != 1 || p.Changes[0].Path != ours || p.Changes[0].New != nil {
		t.Fatalf("without the mount: %v %+v", err, p)
	}
}
