// Command kubeparts is the operator's CLI: `up` runs a local cluster whose roles are
// kubeparts pieces or stock binaries, `status` tells whether one is running.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/kubeparts/kubeparts/internal/localcluster"
)

const usage = `usage: kubeparts <command> [flags]

commands:
  up       run a local cluster in the foreground until Ctrl-C
  status   say whether a cluster runs on a data dir and whether it is ready
  swap     on a kubeadm control-plane host, swap the scheduler or controller manager
           between stock and kubeparts (static pods; backed up, rolled back on failure)

Run 'kubeparts <command> --help' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(os.Args[2:])
	case "status":
		err = status(os.Args[2:])
	case "swap":
		err = swapRole(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "kubeparts: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubeparts %s: error: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// defaultBinDir is where `make build` puts kubeparts next to the stock binaries.
func defaultBinDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "bin"
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	return filepath.Dir(exe)
}

func up(args []string) error {
	fs := pflag.NewFlagSet("up", pflag.ContinueOnError)
	var o localcluster.Options
	fs.StringVar(&o.DataDir, "data-dir", ".kubeparts", "directory holding the cluster's PKI, etcd data, node state and logs; reused on the next up")
	fs.StringVar(&o.BinDir, "bin-dir", defaultBinDir(), "directory of the kubeparts and stock binaries")
	fs.IntVar(&o.PortBase, "port-base", localcluster.DefaultPortBase, fmt.Sprintf("first of %d consecutive ports the cluster listens on (kube-apiserver takes this one)", localcluster.PortCount))
	fs.StringSliceVar(&o.Stock, "stock", nil, "roles to run with the stock binary: controller-manager, scheduler, apiserver, nodeagent, proxy; cloud-controller-manager (no stock one exists for a local machine: none runs)")
	fs.BoolVar(&o.Fresh, "fresh", false, "wipe the data dir first")
	fs.StringVar(&o.NodeName, "node-name", "", "name of the node (default: the host name)")
	fs.IntVar(&o.Nodes, "nodes", 1, fmt.Sprintf("number of nodes (1..%d): the host's node and NODE-NAME-worker1.. each in a network namespace of its own, with its own containerd, agent and pod CIDR", localcluster.MaxNodes))
	fs.IntVar(&o.ControlPlanes, "control-planes", 1, fmt.Sprintf("number of control-plane hosts (1..%d): one is the machine itself; more make a highly available control plane, each host (kube-apiserver, controller managers, schedulers, and its etcd member when stacked) in namespaces of its own, behind HAProxy at --port-base", localcluster.MaxControlPlanes))
	fs.StringVar(&o.Etcd, "etcd", localcluster.EtcdStacked, "etcd topology: stacked (a member on each control-plane host) or external (members on hosts of their own)")
	fs.IntVar(&o.EtcdMembers, "etcd-members", 0, "number of etcd members, odd (default: one per control-plane host when stacked, 3 when external)")
	fs.StringSliceVar(&o.Zones, "zones", nil, "zones to spread the nodes over, round robin (e.g. a,b,c); the cloud provider labels each node with topology.kubernetes.io/zone")
	fs.StringVar(&o.LoadBalancerCIDR, "load-balancer-cidr", "", "IPv4 pool of LoadBalancer Service addresses, on a dummy interface of this machine (default: a /24 of 172.16.0.0/12 derived from the data dir)")
	fs.StringArrayVar(&o.ProxyArgs, "proxy-arg", nil, "extra flag for every kubeparts-proxy, e.g. --proxy-arg=--load-balancing=round-robin (repeatable)")
	fs.DurationVar(&o.ReadyTimeout, "ready-timeout", 3*time.Minute, "how long to wait for the node to become Ready")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	return localcluster.Up(ctx, o)
}

func status(args []string) error {
	fs := pflag.NewFlagSet("status", pflag.ContinueOnError)
	dataDir := fs.String("data-dir", ".kubeparts", "data dir of the cluster")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg, err := localcluster.Status(ctx, *dataDir)
	if err != nil {
		return err
	}
	fmt.Println(msg)
	return nil
}
