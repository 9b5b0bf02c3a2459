// Command kubeparts-proxy runs the kube-proxy role: it programs the node's
// Services into an nftables table of its own (see package proxy). Flags and
// the --config file take kube-proxy's names (see package proxy/config).
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/knftables"

	"github.com/kubeparts/kubeparts/internal/leanflags"
	"github.com/kubeparts/kubeparts/proxy"
	"github.com/kubeparts/kubeparts/proxy/config"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	o := config.NewOptions()
	fs, klogFlags, code, ok := leanflags.Parse("kubeparts-proxy", "the kube-proxy role on nftables", args, os.Stderr, o.AddFlags)
	if !ok {
		return code
	}
	defer klog.Flush()
	cfg, err := o.Complete(fs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	// logging.verbosity of the config file, unless -v was given.
	if !fs.Changed("v") && cfg.Verbosity > 0 {
		_ = klogFlags.Set("v", fmt.Sprint(cfg.Verbosity))
	}
	proxy.TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Listings over netlink: the periodic check of the table must not make
	// nft read and print a table of 100,000 elements every sync period.
	nft, err := knftables.New(knftables.IPv4Family, cfg.TableName, knftables.UseNetlink)
	if err != nil {
		klog.InfoS("nftables over netlink unavailable; listing through nft", "err", err)
		nft, err = knftables.New(knftables.IPv4Family, cfg.TableName)
	}
	if err != nil {
		klog.ErrorS(err, "nftables is not usable")
		return 1
	}
	if cfg.Cleanup {
		if err := proxy.Cleanup(ctx, nft); err != nil {
			klog.ErrorS(err, "Cleanup failed", "table", cfg.TableName)
			return 1
		}
		klog.InfoS("Removed the nftables table", "table", cfg.TableName)
		return 0
	}
	restCfg, err := clientcmd.BuildConfigFromFlags(cfg.Master, cfg.Kubeconfig)
	if err != nil {
		klog.ErrorS(err, "Kubeconfig")
		return 1
	}
	restCfg.QPS, restCfg.Burst, restCfg.ContentType = cfg.ClientQPS, cfg.ClientBurst, cfg.ContentType
	restCfg.UserAgent = rest.DefaultKubernetesUserAgent()
	client, err := proxy.NewClient(restCfg)
	if err != nil {
		klog.ErrorS(err, "API client")
		return 1
	}
	p := proxy.New(cfg, nft, client.Sources(cfg.HostnameOverride), clock.RealClock{})
	// knftables found nft the same way (it runs every transaction through it).
	if path, err := exec.LookPath("nft"); err == nil {
		p.StreamFullSyncs(path)
	}
	if err := p.Serve(ctx); err != nil {
		klog.ErrorS(err, "Serving")
		return 1
	}
	klog.InfoS("Starting kubeparts-proxy", "node", cfg.HostnameOverride, "table", cfg.TableName, "loadBalancing", cfg.LoadBalancing)
	if err := p.Run(ctx); err != nil {
		klog.ErrorS(err, "kubeparts-proxy stopped")
		return 1
	}
	return 0
}
