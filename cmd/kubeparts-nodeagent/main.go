// Command kubeparts-nodeagent runs the node role in place of the kubelet:
// it registers the Node, runs the pods bound to it through the CRI
// (containerd, or an in-process simulated runtime hosting many nodes) and
// serves the kubelet API (see package nodeagent).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/component-base/cli"

	"github.com/kubeparts/kubeparts/nodeagent"
)

func main() {
	o := nodeagent.NewOptions()
	cmd := &cobra.Command{
		Use:          "kubeparts-nodeagent",
		Short:        "Node agent: registers the node, runs its pods through the CRI, serves the kubelet API",
		SilenceUsage: true,
		RunE: func(*cobra.Command, []string) error {
			if errs := o.Validate(); len(errs) > 0 {
				return utilerrors.NewAggregate(errs)
			}
			// SIGINT or SIGTERM stops the agent; running containers stay
			// (the next start adopts them), as with the kubelet.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.Run(ctx)
		},
	}
	o.AddFlags(cmd.Flags())
	os.Exit(cli.Run(cmd))
}
