// Command kubeparts-cloud-controller-manager is the cloud-controller-manager
// of kubeparts clusters: k8s.io/cloud-provider's manager (its flags, its
// controllers, its Lease) with the kubeparts provider (package cloud).
package main

import (
	"os"

	"k8s.io/apimachinery/pkg/util/wait"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/app"
	"k8s.io/cloud-provider/app/config"
	"k8s.io/cloud-provider/names"
	"k8s.io/cloud-provider/options"
	"k8s.io/component-base/cli"
	cliflag "k8s.io/component-base/cli/flag"
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client metrics, as the stock manager's
	"k8s.io/klog/v2"

	"github.com/kubeparts/kubeparts/cloud"
)

func main() {
	opts, err := options.NewCloudControllerManagerOptions()
	if err != nil {
		klog.ErrorS(err, "Options")
		os.Exit(1)
	}
	var f cloud.Flags
	fss := cliflag.NamedFlagSets{}
	fs := fss.FlagSet("kubeparts provider")
	fs.StringVar(&f.LoadBalancerCIDR, "load-balancer-cidr", "", "IPv4 pool of load-balancer addresses (at most a /16), held on a dummy interface of this machine. Overrides loadBalancerCIDR of --cloud-config; empty in both: no load balancers.")
	fs.StringVar(&f.LoadBalancerInterface, "load-balancer-interface", "", "Dummy interface holding the load-balancer addresses (default kubeparts-lb). Overrides loadBalancerInterface of --cloud-config.")
	initCloud := func(c *config.CompletedConfig) cloudprovider.Interface {
		shared := c.ComponentConfig.KubeCloudShared
		p, err := cloud.FromManager(shared.CloudProvider.Name, shared.CloudProvider.CloudConfigFile, shared.ClusterCIDR, f)
		if err != nil {
			klog.ErrorS(err, "Cloud provider")
			klog.FlushAndExit(klog.ExitFlushTimeout, 1)
		}
		return p
	}
	cmd := app.NewCloudControllerManagerCommand(opts, initCloud, app.DefaultInitFuncConstructors, names.CCMControllerAliases(), fss, wait.NeverStop)
	cmd.Use = "kubeparts-cloud-controller-manager"
	os.Exit(cli.Run(cmd))
}
