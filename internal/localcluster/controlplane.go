package localcluster

import (
	"context"
	"fmt"
	"time"
)

// component is one control-plane program of the local cluster: which hosts it runs on,
// its arguments on each, the endpoint whose 200 says it is up, and how long it gets to
// stop. startAll starts the table in order (etcd, kube-apiserver, the load balancer,
// then the controllers) and Stop stops everything in reverse; Wait restarts any of them
// that exits, with back-off.
type component struct {
	name        string // its binary in bin/ (or on PATH), and its process name on a host
	hosts       func(p *plan) []netHost
	args        func(p *plan, c *certs, i int, h netHost) ([]string, error)
	health      func(p *plan, h netHost) string
	stopTimeout time.Duration
}

func onControlPlanes(p *plan) []netHost { return p.topo.controlPlanes }

// onMachine: a piece that acts on the machine itself (the cloud's routes and load
// balancers are the machine's), one instance whatever the topology.
func onMachine(p *plan) []netHost { return []netHost{{name: p.NodeName, ip: p.hostIP}} }

var (
	etcdComponent = component{
		name:        "etcd",
		hosts:       func(p *plan) []netHost { return p.topo.etcd },
		args:        func(p *plan, c *certs, i int, _ netHost) ([]string, error) { return p.etcdArgs(c, i), nil },
		health:      func(p *plan, h netHost) string { return p.etcdHealthURL(h) },
		stopTimeout: 10 * time.Second,
	}
	apiserverComponent = component{
		name:  "kube-apiserver",
		hosts: onControlPlanes,
		args:  func(p *plan, c *certs, i int, _ netHost) ([]string, error) { return p.apiserverArgs(c, i), nil },
		// Anonymous /readyz, as kubeadm's probes and the load balancer's checks read it.
		health: func(p *plan, h netHost) string {
			return fmt.Sprintf("https://%s:%d/readyz", p.local(h), p.ports.APIServer)
		},
		stopTimeout: 15 * time.Second,
	}
)

// controllers are the pieces started once kube-apiserver serves, in this order: the
// kubeparts controller manager first (the stock one leaves its controllers to it), the
// cloud's before the nodes register (they register tainted until it initializes them).
func (p *plan) controllers() []component {
	var out []component
	add := func(run bool, comp component) {
		if run {
			out = append(out, comp)
		}
	}
	add(p.runKubeparts[RoleControllerManager], component{
		name:  "kubeparts-controller-manager",
		hosts: onControlPlanes,
		args: func(p *plan, c *certs, _ int, h netHost) ([]string, error) {
			return p.kubepartsControllerManagerArgs(c, h), nil
		},
		health: func(p *plan, h netHost) string {
			return fmt.Sprintf("http://%s:%d/readyz", p.local(h), p.ports.KubepartsCMHealth)
		},
	})
	add(p.runKubeparts[RoleCloud], component{
		name:  "kubeparts-cloud-controller-manager",
		hosts: onMachine,
		args: func(p *plan, c *certs, _ int, _ netHost) ([]string, error) {
			if err := p.writeInventory(); err != nil {
				return nil, fmt.Errorf("cloud inventory: %w", err)
			}
			return p.cloudControllerManagerArgs(c)
		},
		// /healthz: the cloud-controller-manager has no /readyz.
		health: func(p *plan, _ netHost) string {
			return fmt.Sprintf("https://%s:%d/healthz", p.cloudAddress(), p.ports.CloudControllerManager)
		},
	})
	add(p.binaries["kube-controller-manager"] != "", component{
		name:  "kube-controller-manager",
		hosts: onControlPlanes,
		args: func(p *plan, c *certs, _ int, h netHost) ([]string, error) {
			return p.controllerManagerArgs(c, h), nil
		},
		health: func(p *plan, h netHost) string {
			return fmt.Sprintf("https://%s:%d/healthz", p.local(h), p.ports.ControllerManager)
		},
	})
	schedulerHealth := func(p *plan, h netHost) string {
		return fmt.Sprintf("https://%s:%d/healthz", p.local(h), p.ports.Scheduler)
	}
	add(p.binaries["kube-scheduler"] != "", component{
		name:  "kube-scheduler",
		hosts: onControlPlanes,
		args: func(p *plan, c *certs, _ int, h netHost) ([]string, error) {
			return p.schedulerArgs(c, h), nil
		},
		health: schedulerHealth,
	})
	add(p.runKubeparts[RoleScheduler], component{
		name:  "kubeparts-scheduler",
		hosts: onControlPlanes,
		args: func(p *plan, c *certs, _ int, h netHost) ([]string, error) {
			return p.kubepartsSchedulerArgs(c, h)
		},
		health: schedulerHealth,
	})
	add(p.runKubeparts[RoleAPIServer], component{
		name:  "kubeparts-apiserver",
		hosts: onControlPlanes,
		args: func(p *plan, c *certs, _ int, h netHost) ([]string, error) {
			return p.kubepartsAPIServerArgs(c, h), nil
		},
		health: func(p *plan, h netHost) string {
			return fmt.Sprintf("https://%s:%d/readyz", h.ip, p.ports.KubepartsAPIServer)
		},
	})
	for i := range out {
		out[i].stopTimeout = 10 * time.Second
	}
	return out
}

// startComponent starts comp on each of its hosts (in the host's namespaces).
func (c *Cluster) startComponent(comp component) ([]*process, error) {
	p := c.plan
	var procs []*process
	for i, h := range comp.hosts(p) {
		args, err := comp.args(p, c.certs, i, h)
		if err != nil {
			return nil, err
		}
		bin, args := h.command(p.binaries["nsenter"], p.binaries[comp.name], args)
		proc, err := c.run(h.procName(comp.name), bin, args, comp.stopTimeout)
		if err != nil {
			return nil, err
		}
		proc.health, proc.component = comp.health(p, h), comp.name
		proc.binary, proc.instance = comp.name, h.name
		procs = append(procs, proc)
	}
	return procs, nil
}

// waitHealthy waits until each process's health endpoint answers 200.
func (c *Cluster) waitHealthy(ctx context.Context, procs []*process, timeout time.Duration) error {
	for _, proc := range procs {
		url := proc.health
		if err := c.waitFor(ctx, proc, timeout, func(ctx context.Context) (bool, string) { return httpOK(ctx, url) }); err != nil {
			return err
		}
	}
	return nil
}
