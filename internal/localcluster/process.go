package localcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one supervised child.
type process struct {
	name        string
	bin         string
	args        []string
	cmd         *exec.Cmd
	logPath     string
	stopTimeout time.Duration
	node        string // the node a kubelet or agent runs as
	health      string // the URL whose 200 says a control-plane component is up
	// component names the control-plane component a process is a copy of (its copies
	// on several hosts stop together); "" for the others.
	component string
	// binary and instance say what the process is a copy of and where (host or node),
	// for the restarts record; binary "" means the process's name.
	binary, instance string
	done             chan struct{} // closed when the child exited
	err              error         // its exit status, valid after done
	// restarts counts how often the child was started again after it exited
	// (Cluster.Wait), began is when this run started.
	restarts int
	began    time.Time
}

// start runs bin with args in its own process group, output appended to logs/<name>.log.
// The child gets SIGKILL if `up` itself dies, so a crash never leaves the control plane
// running without its supervisor.
func start(logDir, name, bin string, args []string, stopTimeout time.Duration) (*process, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(logDir, name+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	fmt.Fprintf(log, "==== %s %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, bin: bin, args: args, cmd: cmd, logPath: logPath, stopTimeout: stopTimeout, done: make(chan struct{}), began: time.Now()}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// inherit carries what the supervisor knows of a process over to the process started
// again in its place.
func (p *process) inherit(old *process) {
	p.node, p.health, p.component, p.restarts = old.node, old.health, old.component, old.restarts
	p.binary, p.instance = old.binary, old.instance
}

// exited reports whether the child has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure describes an unexpected exit, pointing at the log's last lines.
func (p *process) failure() error {
	status := "exited"
	if p.err != nil {
		status = p.err.Error()
	}
	return fmt.Errorf("%s %s; last log lines from %s:\n%s", p.name, status, p.logPath, tail(p.logPath, 8))
}

// stop sends SIGTERM to the child's process group, then SIGKILL after stopTimeout.
// stop sends the process group SIGTERM, then SIGKILL to whatever is left; it
// reports whether the child itself had to be killed (it did not exit within
// its stop timeout).
func (p *process) stop() (killed bool) {
	pgid := p.cmd.Process.Pid
	if !p.exited() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(p.stopTimeout):
			killed = true
		}
	}
	// Whatever is left in the group (helpers the child forked) goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	return killed
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "  (no log)"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 300 {
			l = l[:300] + "…"
		}
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

// procInfo is what the process sweep needs to know of one process.
type procInfo struct {
	pid, ppid int
	cmdline   []string
	cgroup    string
}

func listProcs() []procInfo {
	entries, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses: fields start after the last ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		raw, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cg, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		out = append(out, procInfo{pid: pid, ppid: ppid, cmdline: strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), cgroup: string(cg)})
	}
	return out
}

// clusterBinaries are the programs a cluster runs. Only these (and whatever lives in
// the pods' cgroups) count as leftovers: a shell or an editor that merely names a file of
// the data dir is never touched.
var clusterBinaries = []string{
	"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
	"containerd", "containerd-shim", "containerd-shim-runc-v1", "containerd-shim-runc-v2", "ctr", "runc",
	"kubeparts-apiserver", "kubeparts-controller-manager", "kubeparts-scheduler", "kubeparts-nodeagent",
}

// Leftovers lists the live processes that belong to the cluster kept in layout: the
// cluster's programs whose arguments name a path under its data or run dir, and every
// process in its pods' cgroups.
func Leftovers(l Layout) []int {
	self := os.Getpid()
	var pids []int
	for _, p := range listProcs() {
		if p.pid != self && belongs(p, l) {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

func belongs(p procInfo, l Layout) bool {
	for _, line := range strings.Split(p.cgroup, "\n") {
		// "ID:controllers:/path": a pod process sits at or below the node's cgroup root.
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && (f[2] == l.CgroupRoot || strings.HasPrefix(f[2], l.CgroupRoot+"/")) {
			return true
		}
	}
	if len(p.cmdline) == 0 || !slices.Contains(clusterBinaries, filepath.Base(p.cmdline[0])) {
		return false
	}
	for _, arg := range p.cmdline[1:] {
		for _, dir := range []string{l.DataDir, l.RunDir} {
			if strings.Contains(arg, dir+"/") || strings.HasSuffix(arg, dir) {
				return true
			}
		}
	}
	return false
}

// killLeftovers SIGKILLs what Leftovers finds until nothing is left or the deadline
// passes. It runs only when no child started through start is alive.
func killLeftovers(l Layout, deadline time.Duration) error {
	end := time.Now().Add(deadline)
	for {
		reapAdopted(nil)
		pids := Leftovers(l)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("processes still running: %v", pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reapAdopted waits for exited processes that were re-parented to us as subreaper. The
// children in own were started through start and are left to exec.Cmd.Wait.
func reapAdopted(own map[int]bool) {
	self := os.Getpid()
	for _, p := range listProcs() {
		if p.ppid != self {
			continue
		}
		if state, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid)); err == nil && isZombie(string(state)) && !own[p.pid] {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(p.pid, &ws, syscall.WNOHANG, nil)
		}
	}
}

func isZombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i >= 0 && len(stat) > i+2 && stat[i+2] == 'Z'
}
