package localcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeparts/kubeparts/internal/restarts"
)

// Cluster is a started local cluster. Stop it exactly once.
type Cluster struct {
	plan  *plan
	certs *certs
	lock  *dataDirLock
	procs []*process
	// beforeStop runs just before the process of the same name is stopped.
	beforeStop map[string]func(context.Context) error
	client     kubernetes.Interface
	began      time.Time
	// stopBackground ends the loops `up` runs beside its components.
	stopBackground context.CancelFunc
}

// Kubeconfig is the admin kubeconfig of the cluster.
func (c *Cluster) Kubeconfig() string { return c.plan.layout.AdminKubeconfig }

// Up starts a cluster, prints the export line once it is ready, and runs it until ctx is
// cancelled (then stops it cleanly and returns nil) or a component dies (then stops the
// rest and returns why).
func Up(ctx context.Context, o Options) error {
	c, err := Start(ctx, o)
	if err != nil {
		return err
	}
	err = c.Wait(ctx)
	c.Stop()
	return err
}

// Start starts every component and waits until kube-apiserver's /readyz passes and the
// node is Ready. On any failure it stops what it started and returns the reason.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	p, err := newPlan(o)
	if err != nil {
		return nil, err
	}
	c := &Cluster{plan: p, began: time.Now(), beforeStop: map[string]func(context.Context) error{}}
	if c.lock, err = lockDataDir(p.DataDir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	// Shims and container processes daemonize; as subreaper we stay their ancestor, so
	// none can escape the sweep on shutdown.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become subreaper: %w", err)
	}
	left := Leftovers(p.layout)
	if len(left) > 0 {
		c.say("cleaning up %d processes left by an earlier run on this data dir", len(left))
		if err := killLeftovers(p.layout, 15*time.Second); err != nil {
			return nil, err
		}
	}
	if len(left) > 0 || c.lock.uncleanPID != 0 {
		p.nodes[0].removeBridge() // veths of pods whose sandboxes were never torn down
	}
	if n, err := removeStaleMasquerade(p.layout.ClusterCIDR); err != nil {
		c.say("warning: %v", err)
	} else if n > 0 {
		c.say("removed %d pod masquerade rules left in %s by an earlier cluster", n, p.layout.ClusterCIDR)
	}
	removeHostNetworks(p.layout)
	if err := unmountUnder(p.DataDir, p.layout.RunDir); err != nil {
		return nil, err
	}
	if p.Fresh {
		if err := wipe(p.layout); err != nil {
			return nil, fmt.Errorf("--fresh: %w", err)
		}
	}
	if err := os.MkdirAll(p.DataDir, 0o755); err != nil {
		return nil, err
	}
	if err := p.checkTopology(); err != nil {
		return nil, err
	}
	// Components of a killed `up` die with it, but a dying process can hold its ports for
	// a moment after its parent is gone: give them that moment.
	portWait := time.Duration(0)
	if c.lock.uncleanPID != 0 {
		portWait = 15 * time.Second
	}
	if err := checkPorts(p.ports, portWait); err != nil {
		return nil, err
	}
	var nodes []string
	for _, n := range p.nodes {
		pods := n.podCIDR
		if pods == "" {
			pods = "from node IPAM"
		}
		nodes = append(nodes, fmt.Sprintf("%s (%s, pods %s)", n.name, n.ip, pods))
	}
	c.say("data dir %s, ports %d-%d, nodes %s", p.DataDir, p.PortBase, p.PortBase+PortCount-1, strings.Join(nodes, ", "))
	if p.topo.ha() {
		var cps, members []string
		for _, h := range p.topo.controlPlanes {
			cps = append(cps, fmt.Sprintf("%s (%s)", h.name, h.ip))
		}
		for _, h := range p.topo.etcd {
			members = append(members, h.name)
		}
		c.say("control plane: %s behind HAProxy at %s:%d; etcd %s: %s", strings.Join(cps, ", "), p.hostIP, p.ports.APIServer, p.Etcd, strings.Join(members, ", "))
	}
	for _, n := range p.notes {
		c.say("%s", n)
	}
	if c.certs, err = p.ensureCerts(); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := c.startAll(ctx); err != nil {
		return nil, err
	}
	c.say("cluster ready in %.1fs; logs in %s", time.Since(c.began).Seconds(), p.layout.Logs)
	fmt.Fprintf(p.Out, "export KUBECONFIG=%s\n", p.layout.AdminKubeconfig)
	return c, nil
}

func (c *Cluster) startAll(ctx context.Context) error {
	p, certs := c.plan, c.certs
	for _, h := range p.topo.hosts() {
		if err := h.setupHost(p.binaries["ip"], p.binaries["nsenter"], p.binaries["unshare"]); err != nil {
			return err
		}
	}
	// etcd's members first (a member is healthy once a quorum has formed, so all start
	// before any is waited for); the nodes' runtimes start meanwhile.
	members, err := c.startComponent(etcdComponent)
	if err != nil {
		return err
	}
	var runtimes []*process // by node
	if p.runsNode() {
		for _, n := range p.nodes {
			proc, err := c.startRuntime(n)
			if err != nil {
				return err
			}
			runtimes = append(runtimes, proc)
		}
	}
	if err := c.waitHealthy(ctx, members, 30*time.Second); err != nil {
		return err
	}
	apiservers, err := c.startComponent(apiserverComponent)
	if err != nil {
		return err
	}
	if len(runtimes) > 0 {
		images, err := p.localImages(ctx)
		if err != nil {
			return err
		}
		var names []string
		for _, img := range images {
			names = append(names, img.name)
		}
		for i, n := range p.nodes {
			if err := c.waitFor(ctx, runtimes[i], 30*time.Second, func(ctx context.Context) (bool, string) {
				ok, err := n.runtimeReady(ctx)
				if err != nil {
					return false, err.Error()
				}
				return ok, "runtime not ready"
			}); err != nil {
				return err
			}
			if err := p.importImages(ctx, n, images); err != nil {
				return err
			}
		}
		c.say("%-28s %s imported", "images", strings.Join(names, ", "))
	}
	if err := c.waitHealthy(ctx, apiservers, 90*time.Second); err != nil {
		return err
	}
	if p.topo.ha() {
		if err := c.startLoadBalancer(ctx); err != nil {
			return err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", certs.admin)
	if err != nil {
		return err
	}
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	// The proxies first: Services must work before anything in a pod needs one.
	proxies, err := c.startProxies()
	if err != nil {
		return err
	}
	if err := applyDNS(ctx, c.client, p.dnsIP(), clusterDomain, dnsReplicas); err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	if p.runKubeparts[RoleControllerManager] || p.runKubeparts[RoleScheduler] || p.runKubeparts[RoleCloud] {
		if err := applyRBAC(ctx, c.client, p.runKubeparts); err != nil {
			return fmt.Errorf("RBAC for kubeparts pieces: %w", err)
		}
		if err := applyCRDs(ctx, cfg); err != nil {
			return fmt.Errorf("kubeparts CRDs: %w", err)
		}
	}
	var started []*process
	for _, comp := range p.controllers() {
		procs, err := c.startComponent(comp)
		if err != nil {
			return err
		}
		started = append(started, procs...)
	}
	if p.runKubeparts[RoleAPIServer] {
		var ips []net.IP
		for _, h := range p.topo.controlPlanes {
			ips = append(ips, h.ip)
		}
		if err := registerAPIServices(ctx, cfg, ips, p.ports.KubepartsAPIServer, certs.ca.CertPEM); err != nil {
			return fmt.Errorf("APIServices of kubeparts-apiserver: %w", err)
		}
		if p.topo.ha() {
			var urls []string
			for _, proc := range started {
				if proc.component == "kubeparts-apiserver" {
					urls = append(urls, proc.health)
				}
			}
			bg, cancel := context.WithCancel(context.Background())
			c.stopBackground = cancel
			go keepAPIServerEndpoints(bg, c.client, ips, urls, p.ports.KubepartsAPIServer, httpOK)
		}
	}
	// With a cloud, Nodes of hosts this run lacks are the cloud's to delete.
	if !p.runKubeparts[RoleCloud] {
		if err := c.deleteRemovedWorkers(ctx); err != nil {
			return err
		}
	}
	var kubelets []*process // by node
	// A Node kept from the last run still says Ready: only a heartbeat from this kubelet
	// counts. Heartbeats have second granularity.
	kubeletStarted := time.Now().Truncate(time.Second)
	switch {
	case p.runsNode() && p.runKubeparts[RoleNodeAgent]:
		for _, n := range p.nodes {
			bin, args := n.command(p.binaries["nsenter"], p.binaries["kubeparts-nodeagent"], p.nodeAgentArgs(certs, n))
			proc, err := c.run(n.procName("kubeparts-nodeagent"), bin, args, 30*time.Second)
			if err != nil {
				return err
			}
			proc.node, proc.binary, proc.instance = n.name, "kubeparts-nodeagent", n.name
			kubelets = append(kubelets, proc)
		}
	case p.runsNode():
		config, err := p.writeKubeletConfig(certs)
		if err != nil {
			return err
		}
		proc, err := c.run("kubelet", p.binaries["kubelet"], p.kubeletArgs(certs, config), 30*time.Second)
		if err != nil {
			return err
		}
		proc.node, proc.binary, proc.instance = p.nodes[0].name, "kubelet", p.nodes[0].name
		kubelets = append(kubelets, proc)
	}
	if err := c.waitHealthy(ctx, started, 60*time.Second); err != nil {
		return err
	}
	for i, proc := range proxies {
		url := p.proxyHealthURL(p.nodes[i])
		if err := c.waitFor(ctx, proc, 60*time.Second, func(ctx context.Context) (bool, string) { return httpOK(ctx, url) }); err != nil {
			return err
		}
	}
	for _, kubelet := range kubelets {
		if err := c.waitFor(ctx, kubelet, p.ReadyTimeout, func(ctx context.Context) (bool, string) {
			return c.nodeReady(ctx, kubelet.node, kubeletStarted)
		}); err != nil {
			return err
		}
	}
	// The host's node is the control plane, labelled as kubeadm labels it (the
	// node may not label itself so: NodeRestriction), so manifests for control-plane
	// pieces find it. It is not tainted: on a single node everything runs there.
	patch := []byte(`{"metadata":{"labels":{"node-role.kubernetes.io/control-plane":""}}}`)
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, p.nodes[0].name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("label the control-plane node: %w", err)
	}
	return nil
}

// startRuntime starts the node's containerd, in the node's network namespace (made
// here for a worker) and cgroup root, and removes its pods before it stops.
func (c *Cluster) startRuntime(n nodeSpec) (*process, error) {
	p := c.plan
	if n.netns != "" {
		if err := n.setupNetwork(p.binaries["ip"], p.binaries["nsenter"]); err != nil {
			return nil, err
		}
	}
	if err := ensureCgroupRoot(n); err != nil {
		return nil, err
	}
	config, err := p.writeContainerdConfig(n)
	if err != nil {
		return nil, err
	}
	bin, args := n.command(p.binaries["nsenter"], p.binaries["containerd"], []string{"--config", config})
	proc, err := c.run(n.procName("containerd"), bin, args, 10*time.Second)
	if err != nil {
		return nil, err
	}
	proc.binary, proc.instance = "containerd", n.name
	c.beforeStop[proc.name] = n.removePods
	return proc, nil
}

// startProxies starts each node's proxy (kubeparts-proxy, or the stock
// kube-proxy in nftables mode with --stock=proxy) in the node's network
// namespace.
func (c *Cluster) startProxies() ([]*process, error) {
	p := c.plan
	var procs []*process
	for _, n := range p.nodes {
		name, bin, args := "kubeparts-proxy", p.binaries["kubeparts-proxy"], p.proxyArgs(c.certs, n)
		if !p.runKubeparts[RoleProxy] {
			cfg, err := p.writeKubeProxyConfig(c.certs, n)
			if err != nil {
				return nil, err
			}
			name, bin, args = "kube-proxy", p.binaries["kube-proxy"], []string{"--config=" + cfg}
		}
		bin, args = n.command(p.binaries["nsenter"], bin, args)
		proc, err := c.run(n.procName(name), bin, args, 10*time.Second)
		if err != nil {
			return nil, err
		}
		// A proxy that dies is started again (Wait) as any component; the rules
		// it left serve meanwhile.
		proc.node, proc.binary, proc.instance = n.name, name, n.name
		procs = append(procs, proc)
	}
	return procs, nil
}

// removeProxyRules removes the host node's proxy table, as `kube-proxy
// --cleanup` does on a node given back: the rules would otherwise outlive
// the cluster in the machine's network namespace (the workers' go with
// their namespaces).
func (p *plan) removeProxyRules() error {
	bin, args := p.binaries["kubeparts-proxy"], []string{"--cleanup", "--nftables-table=" + p.layout.ProxyTable}
	if !p.runKubeparts[RoleProxy] {
		bin, args = p.binaries["kube-proxy"], []string{"--cleanup"}
	}
	if bin == "" {
		return nil
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s --cleanup: %v: %s", filepath.Base(bin), err, firstLine(string(out)))
	}
	return nil
}

// deleteRemovedWorkers deletes the Nodes of workers an earlier run had and this one has
// not (it was started with more --nodes), as an operator would after removing a machine;
// their pods are then recreated elsewhere by their controllers.
func (c *Cluster) deleteRemovedWorkers(ctx context.Context) error {
	list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	prefix := c.plan.NodeName + "-worker"
	for _, node := range list.Items {
		i, err := strconv.Atoi(strings.TrimPrefix(node.Name, prefix))
		if !strings.HasPrefix(node.Name, prefix) || err != nil || i < c.plan.Nodes {
			continue
		}
		if err := c.client.CoreV1().Nodes().Delete(ctx, node.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete node %s of an earlier run: %w", node.Name, err)
		}
		c.say("deleted node %s: this run has %d nodes", node.Name, c.plan.Nodes)
	}
	return nil
}

// run starts one component and records it for Stop.
func (c *Cluster) run(name, bin string, args []string, stopTimeout time.Duration) (*process, error) {
	proc, err := start(c.plan.layout.Logs, name, bin, args, stopTimeout)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, proc)
	return proc, nil
}

// Restart stops the named component and starts it again with the same
// arguments, as a supervisor (systemd) restarting a node daemon would: for
// tests of what survives a restart of the node agent or containerd.
func (c *Cluster) Restart(name string) error {
	return c.RestartAfter(name, nil)
}

// RestartAfter is Restart with whileStopped run between the stop and the
// start (a change the component must notice when it is back).
func (c *Cluster) RestartAfter(name string, whileStopped func() error) error {
	for i, p := range c.procs {
		if p.name != name {
			continue
		}
		p.stop()
		if whileStopped != nil {
			if err := whileStopped(); err != nil {
				return err
			}
		}
		proc, err := start(c.plan.layout.Logs, p.name, p.bin, p.args, p.stopTimeout)
		if err != nil {
			return err
		}
		proc.inherit(p)
		c.procs[i] = proc
		return nil
	}
	return fmt.Errorf("no component %q", name)
}

// Pid is the process ID of the named component (0 if it does not run).
func (c *Cluster) Pid(name string) int {
	for _, p := range c.procs {
		if p.name == name && !p.exited() {
			return p.cmd.Process.Pid
		}
	}
	return 0
}

// waitFor polls check until it passes, proc dies, ctx ends or timeout passes; it prints
// the component's line when it passes and the last reason when it does not.
func (c *Cluster) waitFor(ctx context.Context, proc *process, timeout time.Duration, check func(context.Context) (bool, string)) error {
	began := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	what := proc.name
	if proc.node != "" {
		what = fmt.Sprintf("node %s (%s)", proc.node, strings.TrimSuffix(proc.name, "-"+proc.node))
	}
	last := ""
	for {
		if c.anyExited() != nil {
			return c.anyExited().failure()
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, reason := check(cctx)
		cancel()
		if ok {
			c.say("%-28s ready after %.1fs (pid %d)", what, time.Since(began).Seconds(), proc.cmd.Process.Pid)
			return nil
		}
		last = reason
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while waiting for %s", what)
		case <-deadline.C:
			return fmt.Errorf("%s not ready after %s: %s (log: %s)", what, timeout, last, proc.logPath)
		case <-tick.C:
		}
	}
}

func (c *Cluster) anyExited() *process {
	for _, p := range c.procs {
		if p.exited() {
			return p
		}
	}
	return nil
}

func (c *Cluster) nodeReady(ctx context.Context, name string, since time.Time) (bool, string) {
	node, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, "node not registered yet"
	}
	if err != nil {
		return false, err.Error()
	}
	if c.plan.runKubeparts[RoleCloud] {
		if node.Spec.PodCIDR == "" {
			return false, "no pod CIDR from node IPAM yet"
		}
		// Pods on other nodes reach a worker's pods once the cloud has routed its
		// range. The kernel is asked, not the NetworkUnavailable condition: a
		// condition of the last run would still say so.
		for _, n := range c.plan.nodes {
			if n.name == name && n.netns != "" && !routedVia(node.Spec.PodCIDR, n.ip) {
				return false, fmt.Sprintf("pod CIDR %s not routed to %s by the cloud yet", node.Spec.PodCIDR, n.ip)
			}
		}
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.LastHeartbeatTime.Time.Before(since) {
				return false, "no status from the kubelet yet"
			}
			return cond.Status == corev1.ConditionTrue, fmt.Sprintf("Ready=%s %s: %s", cond.Status, cond.Reason, cond.Message)
		}
	}
	return false, "node has no Ready condition yet"
}

// Wait supervises the components until ctx ends: one that exits or is killed is
// started again after a back-off, as systemd's Restart=always or the kubelet's
// static pods would, while the rest (and the pods) keep running. Only a failure to
// start it again at all ends Wait with that error.
func (c *Cluster) Wait(ctx context.Context) error {
	own := map[int]bool{}
	for _, p := range c.procs {
		own[p.cmd.Process.Pid] = true
	}
	reap := time.NewTicker(5 * time.Second)
	defer reap.Stop()
	for {
		for i, p := range c.procs {
			select {
			case <-p.done:
				proc, err := c.restartCrashed(ctx, p)
				if err != nil {
					return err
				}
				if proc == nil {
					return nil // interrupted during the back-off
				}
				c.procs[i] = proc
				own[proc.cmd.Process.Pid] = true
				c.writeRestarts()
			default:
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-reap.C:
			reapAdopted(own)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// restartCrashed starts a component that exited again after a back-off
// (1 s, doubling to 30 s; back to 1 s once a run lasted a minute), saying so
// in one line. It returns nil when ctx ended during the back-off.
func (c *Cluster) restartCrashed(ctx context.Context, p *process) (*process, error) {
	delay := time.Second
	if time.Since(p.began) < time.Minute {
		delay = min(time.Second<<min(p.restarts, 5), 30*time.Second)
	}
	status := "exited"
	if p.err != nil {
		status = p.err.Error()
	}
	c.say("%s %s; restarting it in %s (restart %d; log %s)", p.name, status, delay, p.restarts+1, p.logPath)
	select {
	case <-ctx.Done():
		return nil, nil
	case <-time.After(delay):
	}
	proc, err := start(c.plan.layout.Logs, p.name, p.bin, p.args, p.stopTimeout)
	if err != nil {
		return nil, err
	}
	proc.inherit(p)
	proc.restarts++
	return proc, nil
}

// restartsFile records how often each component was restarted, for `kubeparts
// status` (another process) to show.
func restartsFile(l Layout) string { return filepath.Join(l.RunDir, "restarts.json") }

func (c *Cluster) writeRestarts() {
	var records []restarts.Record
	for _, p := range c.procs {
		if p.restarts > 0 {
			binary := p.binary
			if binary == "" {
				binary = p.name
			}
			records = append(records, restarts.Record{Process: p.name, Binary: binary, Instance: p.instance, Restarts: int32(p.restarts)})
		}
	}
	if err := restarts.Write(restartsFile(c.plan.layout), records); err != nil {
		c.say("warning: recording restarts: %v", err)
	}
}

// restartsLine says which components were restarted, "" when none was.
func restartsLine(l Layout) string {
	records, err := restarts.Read(restartsFile(l))
	if err != nil || len(records) == 0 {
		return ""
	}
	var parts []string
	for _, r := range records {
		parts = append(parts, fmt.Sprintf("%s %d", r.Process, r.Restarts))
	}
	sort.Strings(parts)
	return "; restarts: " + strings.Join(parts, ", ")
}

// Stop stops the components in reverse start order, removes the pods, sweeps any process
// of the cluster still alive, unmounts what was mounted under the data and run dirs and
// releases the data dir.
func (c *Cluster) Stop() {
	if c.lock == nil {
		return
	}
	if len(c.procs) > 0 {
		c.say("stopping")
	}
	if c.stopBackground != nil {
		c.stopBackground()
	}
	for i := len(c.procs) - 1; i >= 0; {
		// A component's copies on several hosts stop together: one after the other,
		// three kube-apiservers would take three grace periods.
		j := i
		for j > 0 && c.procs[i].component != "" && c.procs[j-1].component == c.procs[i].component {
			j--
		}
		for _, wave := range stopWaves(c.procs[j : i+1]) {
			var wg sync.WaitGroup
			killed := make([]bool, len(wave))
			for k, p := range wave {
				if hook := c.beforeStop[p.name]; hook != nil && !p.exited() {
					if err := hook(context.Background()); err != nil {
						c.say("%s: %v", p.name, err)
					}
				}
				wg.Add(1)
				go func() { defer wg.Done(); killed[k] = p.stop() }()
			}
			wg.Wait()
			for k, p := range wave {
				if killed[k] {
					c.say("%s did not exit within %s of SIGTERM: killed", p.name, p.stopTimeout)
				}
			}
		}
		i = j - 1
	}
	if err := killLeftovers(c.plan.layout, 15*time.Second); err != nil {
		c.say("warning: %v", err)
	}
	// Pods whose network could not be torn down (a node killed earlier) leave theirs.
	if _, err := removeStaleMasquerade(c.plan.layout.ClusterCIDR); err != nil {
		c.say("warning: %v", err)
	}
	if err := c.plan.removeProxyRules(); err != nil {
		c.say("warning: %v", err)
	}
	c.plan.removeLoadBalancers()
	if err := unmountUnder(c.plan.DataDir, c.plan.layout.RunDir); err != nil {
		c.say("warning: %v", err)
	}
	c.plan.removeCgroupRoot()
	c.plan.nodes[0].removeBridge()
	removeHostNetworks(c.plan.layout)
	// The run dir holds only runtime state (sockets, containerd state, IPAM leases).
	if err := os.RemoveAll(c.plan.layout.RunDir); err != nil {
		c.say("warning: %v", err)
	}
	c.lock.release()
	c.lock = nil
	// Nothing of the cluster is left to adopt: a process embedding the
	// cluster (a test) must not keep collecting orphans it never reaps.
	reapAdopted(nil)
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	if len(c.procs) > 0 {
		c.say("stopped")
	}
}

func (c *Cluster) say(format string, args ...any) {
	fmt.Fprintf(c.plan.Out, "kubeparts up: "+format+"\n", args...)
}

// checkPorts fails when any of the cluster's ports is still taken after wait, naming the
// first.
func checkPorts(p Ports, wait time.Duration) error {
	named := []struct {
		name string
		port int
	}{
		{"kube-apiserver", p.APIServer}, {"etcd client", p.EtcdClient}, {"etcd peer", p.EtcdPeer},
		{"etcd metrics", p.EtcdMetrics}, {"controller-manager", p.ControllerManager}, {"scheduler", p.Scheduler},
		{"kubelet", p.Kubelet}, {"kubelet healthz", p.KubeletHealthz}, {"containerd streaming", p.Stream},
		{"kubeparts-apiserver", p.KubepartsAPIServer}, {"kubeparts-controller-manager metrics", p.KubepartsCMMetrics},
		{"kubeparts-controller-manager health", p.KubepartsCMHealth},
		{"proxy healthz", p.ProxyHealthz}, {"proxy metrics", p.ProxyMetrics},
	}
	deadline := time.Now().Add(wait)
	for _, n := range named {
		for !portFree(n.port) {
			if time.Now().After(deadline) {
				return fmt.Errorf("port %d (%s) is already in use; choose other ports with --port-base", n.port, n.name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// portFree reports whether nothing listens on port, on any address. Binding alone is not
// proof (with SO_REUSEADDR a wildcard bind can coexist with a loopback listener), so a
// loopback connect must fail too.
func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return false
	}
	l.Close()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
	if err == nil {
		conn.Close()
		return false
	}
	return true
}

// httpOK probes a health endpoint. The components' own serving certificates are
// self-signed, so the probe, like kubeadm's, does not verify them.
func httpOK(ctx context.Context, url string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	// No keep-alive: each probe has its own transport, which would otherwise keep its
	// idle connection (and goroutines) forever.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return false, firstLine(err.Error())
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK, resp.Status
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// Status describes the cluster kept in dataDir: whether an `up` runs on it and, if so,
// whether its kube-apiserver is ready.
func Status(ctx context.Context, dataDir string) (string, error) {
	l, err := LayoutFor(dataDir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(l.DataDir); errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("no cluster in %s", l.DataDir), nil
	}
	pid := OwnerPID(l.DataDir)
	if pid == 0 {
		return fmt.Sprintf("cluster in %s is stopped", l.DataDir), nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", l.AdminKubeconfig)
	if err != nil {
		return "", err
	}
	cfg.Timeout = 5 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	if _, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return fmt.Sprintf("cluster in %s is running (pid %d) but not ready: %s", l.DataDir, pid, firstLine(err.Error())), nil
	}
	return fmt.Sprintf("cluster in %s is running (pid %d) and ready%s; export KUBECONFIG=%s", l.DataDir, pid, restartsLine(l), l.AdminKubeconfig), nil
}
