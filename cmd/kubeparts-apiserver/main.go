// Command kubeparts-apiserver is an aggregated API server serving
// metrics.k8s.io/v1beta1 (in place of metrics-server) and
// controlplane.kubeparts.dev/v1alpha1; the logic lives in package apiserver.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/cli"

	"github.com/kubeparts/kubeparts/apiserver"
)

func main() {
	o := apiserver.NewOptions()
	cmd := &cobra.Command{
		Use:          "kubeparts-apiserver",
		Short:        "Aggregated API server for metrics.k8s.io and controlplane.kubeparts.dev",
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if errs := o.Validate(); len(errs) > 0 {
				return utilerrors.NewAggregate(errs)
			}
			s, err := o.New()
			if err != nil {
				return fmt.Errorf("kubeparts-apiserver: %w", err)
			}
			return s.Run(genericapiserver.SetupSignalContext())
		},
	}
	o.AddFlags(cmd.Flags())
	os.Exit(cli.Run(cmd))
}
