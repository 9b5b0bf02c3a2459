// Command kubeparts-controller-manager runs kubeparts' controller-runtime reconcilers in
// place of kube-controller-manager controllers of the same names.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kubeparts/kubeparts/controllers/app"
)

func main() {
	var o app.Options
	fs := pflag.NewFlagSet("kubeparts-controller-manager", pflag.ContinueOnError)
	o.AddFlags(fs)
	logCfg := textlogger.NewConfig()
	verbosity := fs.Int("v", 0, "log verbosity")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	_ = logCfg.Verbosity().Set(fmt.Sprint(*verbosity))
	logger := textlogger.NewLogger(logCfg)
	klog.SetLogger(logger)
	ctrl.SetLogger(logger)
	if err := app.Run(ctrl.SetupSignalHandler(), &o); err != nil {
		fmt.Fprintf(os.Stderr, "kubeparts-controller-manager: error: %v\n", err)
		os.Exit(1)
	}
}
