// Command kubeparts-nodeagent runs the node role: it registers Nodes and runs
// the pods bound to them through the CRI. Only the simulated runtime is
// implemented so far (see package nodeagent).
package main

import (
	"os"

	"github.com/spf13/cobra"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/cli"

	"github.com/kubeparts/kubeparts/nodeagent"
)

func main() {
	o := nodeagent.NewOptions()
	cmd := &cobra.Command{
		Use:          "kubeparts-nodeagent",
		Short:        "Node agent: registers nodes and runs their pods through the CRI",
		SilenceUsage: true,
		RunE: func(*cobra.Command, []string) error {
			if errs := o.Validate(); len(errs) > 0 {
				return utilerrors.NewAggregate(errs)
			}
			return o.Run(genericapiserver.SetupSignalContext())
		},
	}
	o.AddFlags(cmd.Flags())
	os.Exit(cli.Run(cmd))
}
