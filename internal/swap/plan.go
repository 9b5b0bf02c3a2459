// Package swap moves a control-plane role of a kubeadm host between its stock piece and
// kubeparts' by editing the static-pod manifests the kubelet runs, as an operator would by
// hand (config/kubeadm): with a backup of every file it touches, a wait until the new piece
// is healthy and holds its Lease, and a rollback to the files as they were if it does not.
package swap

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/kubeparts/kubeparts/config"
	"github.com/kubeparts/kubeparts/internal/controllernames"
)

// Roles swap handles: the control-plane roles kubeadm runs as static pods. The others are
// installed in the cluster (charts/kubeparts) or are the node's own service.
const (
	RoleScheduler         = "scheduler"
	RoleControllerManager = "controller-manager"
)

// Targets of a swap.
const (
	ToKubeparts = "kubeparts"
	ToStock     = "stock"
)

// Host is where a kubeadm control plane keeps its files.
type Host struct {
	// ManifestsDir is the kubelet's static pod directory (/etc/kubernetes/manifests).
	ManifestsDir string
	// ConfigDir holds the components' kubeconfigs and configuration (/etc/kubernetes).
	ConfigDir string
	// Image is the kubeparts image of the role; empty: the one in config/kubeadm.
	Image string
}

// FileChange is one file the swap writes (New) or removes (New == nil).
type FileChange struct {
	Path     string
	Old, New []byte // Old nil: the file does not exist yet
}

// Plan is what a swap changes, computed before anything is touched.
type Plan struct {
	Role, To string
	Changes  []FileChange
	// Lease is the Lease whose holder shows the new piece is in charge
	// (namespace/name).
	Lease string
	// Pod is the name prefix of the mirror pod of the piece that must become Ready.
	Pod string
}

var (
	stockManifest = map[string]string{RoleScheduler: "kube-scheduler.yaml", RoleControllerManager: "kube-controller-manager.yaml"}
	oursManifest  = map[string]string{RoleScheduler: "kubeparts-scheduler.yaml", RoleControllerManager: "kubeparts-controller-manager.yaml"}
)

// ErrNothingToDo says the role already runs as asked.
type ErrNothingToDo struct{ Role, To string }

func (e ErrNothingToDo) Error() string {
	return fmt.Sprintf("%s already runs %s on this host", e.Role, e.To)
}

// NewPlan reads the host's files and says what swapping role to to changes. A role that
// is not running as a static pod here, or an unknown role or target, is an error that
// says so; a role already swapped is ErrNothingToDo.
func NewPlan(h Host, role, to string) (*Plan, error) {
	if _, ok := stockManifest[role]; !ok {
		return nil, fmt.Errorf("role %q: swap handles the static-pod roles %s and %s of a kubeadm control-plane host; install the others with the Helm chart (charts/kubeparts)", role, RoleScheduler, RoleControllerManager)
	}
	if to != ToKubeparts && to != ToStock {
		return nil, fmt.Errorf("--to %q: want %s or %s", to, ToKubeparts, ToStock)
	}
	read := func(name string) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(h.ManifestsDir, name))
		if os.IsNotExist(err) {
			return nil, nil
		}
		return data, err
	}
	stock, err := read(stockManifest[role])
	if err != nil {
		return nil, err
	}
	ours, err := read(oursManifest[role])
	if err != nil {
		return nil, err
	}
	p := &Plan{Role: role, To: to}
	switch role {
	case RoleScheduler:
		err = p.scheduler(h, stock, ours)
	case RoleControllerManager:
		err = p.controllerManager(h, stock, ours)
	}
	if err != nil {
		return nil, err
	}
	if len(p.Changes) == 0 {
		return nil, ErrNothingToDo{role, to}
	}
	if err := p.refuseMounts(); err != nil {
		return nil, err
	}
	return p, nil
}

// scheduler: kubeparts-scheduler replaces kube-scheduler, on the stock identity and Lease
// (config/scheduler/profile.yaml), so the two never both schedule.
func (p *Plan) scheduler(h Host, stock, ours []byte) error {
	p.Lease, p.Pod = "kube-system/kube-scheduler", "kubeparts-scheduler"
	stockPath, oursPath := filepath.Join(h.ManifestsDir, stockManifest[RoleScheduler]), filepath.Join(h.ManifestsDir, oursManifest[RoleScheduler])
	switch p.To {
	case ToKubeparts:
		if stock == nil && ours == nil {
			return fmt.Errorf("no scheduler runs as a static pod in %s (neither %s nor %s): is this a kubeadm control-plane host? (--manifests-dir)", h.ManifestsDir, stockManifest[RoleScheduler], oursManifest[RoleScheduler])
		}
		if stock == nil {
			return nil // ours runs already
		}
		if err := needFile(h, "scheduler.conf", "kubeadm writes it with the control plane (kubeadm init phase kubeconfig scheduler)"); err != nil {
			return err
		}
		manifest, err := staticPod(h, oursManifest[RoleScheduler])
		if err != nil {
			return err
		}
		profile := filepath.Join(h.ConfigDir, "kubeparts-scheduler.yaml")
		old, err := readOptional(profile)
		if err != nil {
			return err
		}
		p.Changes = append(p.Changes, FileChange{Path: profile, Old: old, New: config.SchedulerProfile},
			FileChange{Path: oursPath, Old: ours, New: manifest},
			FileChange{Path: stockPath, Old: stock})
	case ToStock:
		p.Pod = "kube-scheduler"
		if ours == nil {
			if stock == nil {
				return fmt.Errorf("no scheduler runs as a static pod in %s", h.ManifestsDir)
			}
			return nil
		}
		backup, err := latestBackup(h, stockManifest[RoleScheduler])
		if err != nil {
			return err
		}
		p.Changes = append(p.Changes, FileChange{Path: stockPath, Old: stock, New: backup}, FileChange{Path: oursPath, Old: ours})
	}
	return nil
}

// controllerManager: kubeparts-controller-manager runs beside kube-controller-manager,
// whose --controllers switches off exactly the controllers kubeparts runs.
func (p *Plan) controllerManager(h Host, stock, ours []byte) error {
	p.Lease, p.Pod = "kube-system/kubeparts-controller-manager", "kubeparts-controller-manager"
	if stock == nil {
		return fmt.Errorf("kube-controller-manager does not run as a static pod in %s (%s missing): is this a kubeadm control-plane host? (--manifests-dir)", h.ManifestsDir, stockManifest[RoleControllerManager])
	}
	stockPath, oursPath := filepath.Join(h.ManifestsDir, stockManifest[RoleControllerManager]), filepath.Join(h.ManifestsDir, oursManifest[RoleControllerManager])
	switch p.To {
	case ToKubeparts:
		edited, err := switchControllers(stock, true)
		if err != nil {
			return err
		}
		if ours == nil {
			if err := needFile(h, "kubeparts-controller-manager.conf", "kubeadm kubeconfig user --client-name kubeparts-controller-manager > FILE, and kubectl apply -f config/rbac/controller-manager.yaml"); err != nil {
				return err
			}
			manifest, err := staticPod(h, oursManifest[RoleControllerManager])
			if err != nil {
				return err
			}
			p.Changes = append(p.Changes, FileChange{Path: oursPath, New: manifest})
		}
		if !bytes.Equal(edited, stock) {
			p.Changes = append(p.Changes, FileChange{Path: stockPath, Old: stock, New: edited})
		}
	case ToStock:
		p.Lease, p.Pod = "kube-system/kube-controller-manager", "kube-controller-manager"
		edited, err := switchControllers(stock, false)
		if err != nil {
			return err
		}
		if !bytes.Equal(edited, stock) {
			p.Changes = append(p.Changes, FileChange{Path: stockPath, Old: stock, New: edited})
		}
		if ours != nil {
			p.Changes = append(p.Changes, FileChange{Path: oursPath, Old: ours})
		}
	}
	return nil
}

var controllersArg = regexp.MustCompile(`(?m)^(\s*- )--controllers=(\S*)\s*$`)

// switchControllers edits kube-controller-manager's --controllers so that it leaves
// kubeparts' controllers to kubeparts (off) or runs them again (on = !off), keeping the
// rest of the list (kubeadm's "*,bootstrapsigner,tokencleaner") as it was.
func switchControllers(manifest []byte, off bool) ([]byte, error) {
	ours := controllernames.StockNames()
	m := controllersArg.FindSubmatchIndex(manifest)
	if m == nil {
		if !off {
			return manifest, nil
		}
		// No --controllers: kube-controller-manager's default, "*".
		cmd := regexp.MustCompile(`(?m)^(\s*- )kube-controller-manager\s*$`).FindSubmatchIndex(manifest)
		if cmd == nil {
			return nil, fmt.Errorf("kube-controller-manager's manifest has neither --controllers nor the kube-controller-manager command line to add it after")
		}
		indent := string(manifest[cmd[2]:cmd[3]])
		line := indent + "--controllers=*," + strings.Join(prefixed(ours), ",") + "\n"
		end := cmd[1] + 1
		return slices.Concat(manifest[:end], []byte(line), manifest[end:]), nil
	}
	var kept []string
	for _, c := range strings.Split(string(manifest[m[4]:m[5]]), ",") {
		if name := strings.TrimPrefix(c, "-"); c != "" && !slices.Contains(ours, name) {
			kept = append(kept, c)
		}
	}
	if off {
		kept = append(kept, prefixed(ours)...)
	}
	return slices.Concat(manifest[:m[4]], []byte(strings.Join(kept, ",")), manifest[m[5]:]), nil
}

func prefixed(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "-" + n
	}
	return out
}

// staticPod is config/kubeadm's manifest of ours, with the host's image and paths.
func staticPod(h Host, name string) ([]byte, error) {
	data, err := config.KubeadmStaticPods.ReadFile("kubeadm/" + name)
	if err != nil {
		return nil, err
	}
	if h.ConfigDir != "/etc/kubernetes" {
		// Only where the host's files are read from: inside the container the paths
		// stay what the configuration files name.
		data = regexp.MustCompile(`(hostPath: \{path: )/etc/kubernetes/`).ReplaceAll(data, []byte("${1}"+strings.TrimSuffix(h.ConfigDir, "/")+"/"))
	}
	if h.Image != "" {
		data = regexp.MustCompile(`(?m)^(\s*image: )\S+`).ReplaceAll(data, []byte("${1}"+h.Image))
	}
	return data, nil
}

func readOptional(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	return data, err
}

// BackupDir is where a host's swaps keep the files they replaced.
func (h Host) BackupDir() string { return filepath.Join(h.ConfigDir, "kubeparts-swap-backup") }

// latestBackup is the last saved copy of a manifest the swap to kubeparts removed.
func latestBackup(h Host, name string) ([]byte, error) {
	matches, err := filepath.Glob(filepath.Join(h.BackupDir(), "*", name))
	if err != nil {
		return nil, err
	}
	for i := len(matches) - 1; i >= 0; i-- { // names sort by time
		if data, err := os.ReadFile(matches[i]); err == nil && len(data) > 0 {
			return data, nil
		}
	}
	return nil, fmt.Errorf("no saved %s in %s to go back to: put the stock manifest back by hand (kubeadm init phase control-plane %s regenerates it)", name, h.BackupDir(), strings.TrimPrefix(strings.TrimSuffix(name, ".yaml"), "kube-"))
}

// needFile refuses a swap whose new piece would start without its kubeconfig (it would
// only crash-loop until rolled back).
func needFile(h Host, name, how string) error {
	path := filepath.Join(h.ConfigDir, name)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s: the new piece's kubeconfig is missing (%s)", path, strings.Replace(how, "FILE", path, 1))
	}
	return nil
}
