// Command kubeparts-nodeagent runs the node role in place of the kubelet:
// it registers the Node, runs the pods bound to it through the CRI
// (containerd, or an in-process simulated runtime hosting many nodes) and
// serves the kubelet API (see package nodeagent).
//
// Flags are parsed with pflag and klog's own flags (-v, --vmodule, ...)
// rather than through component-base's cli and logs packages: those link
// feature gates, metrics registries and log formats the agent does not use,
// and every linked megabyte is resident in every node's agent (see package
// nodeagent/kubeclient).
package main

import (
	"context"
	goflag "flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/klog/v2"

	"github.com/kubeparts/kubeparts/nodeagent"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	o := nodeagent.NewOptions()
	fs := pflag.NewFlagSet("kubeparts-nodeagent", pflag.ContinueOnError)
	// As the Kubernetes components: --foo_bar is --foo-bar.
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		return pflag.NormalizedName(strings.ReplaceAll(name, "_", "-"))
	})
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "kubeparts-nodeagent: node agent: registers the node, runs its pods through the CRI, serves the kubelet API\n\nUsage:\n  kubeparts-nodeagent [flags]\n\nFlags:\n%s", fs.FlagUsages())
	}
	o.AddFlags(fs)
	klogFlags := goflag.NewFlagSet("klog", goflag.ContinueOnError)
	klog.InitFlags(klogFlags)
	fs.AddGoFlagSet(klogFlags)
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	defer klog.Flush()
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "Error: unexpected arguments %v\n", fs.Args())
		return 1
	}
	if errs := o.Validate(); len(errs) > 0 {
		fmt.Fprintln(os.Stderr, "Error:", utilerrors.NewAggregate(errs))
		return 1
	}
	// SIGINT or SIGTERM stops the agent; running containers stay (the next
	// start adopts them), as with the kubelet.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := o.Run(ctx); err != nil {
		klog.ErrorS(err, "Node agent stopped")
		return 1
	}
	return 0
}
