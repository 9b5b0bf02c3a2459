// Command kubeparts-scheduler is the upstream kube-scheduler runtime with
// kubeparts' plugins registered beside the in-tree ones. It takes the same
// flags and KubeSchedulerConfiguration as kube-scheduler; a profile switches
// in-tree plugins off and ours on (config/scheduler/ has both modes: replacing
// the default scheduler, and running as a second scheduler).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register" // --logging-format=json, as kube-scheduler
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/kubeparts/kubeparts/scheduler-plugins/gang"
	"github.com/kubeparts/kubeparts/scheduler-plugins/nodeaffinity"
	"github.com/kubeparts/kubeparts/scheduler-plugins/noderesourcesfit"
	"github.com/kubeparts/kubeparts/scheduler-plugins/nodeunschedulable"
	"github.com/kubeparts/kubeparts/scheduler-plugins/podtopologyspread"
	"github.com/kubeparts/kubeparts/scheduler-plugins/tainttoleration"
)

func main() {
	cmd := app.NewSchedulerCommand(
		app.WithPlugin(noderesourcesfit.Name, noderesourcesfit.New),
		app.WithPlugin(nodeaffinity.Name, nodeaffinity.New),
		app.WithPlugin(tainttoleration.Name, tainttoleration.New),
		app.WithPlugin(nodeunschedulable.Name, nodeunschedulable.New),
		app.WithPlugin(podtopologyspread.Name, podtopologyspread.New),
		app.WithPlugin(gang.Name, gang.New),
	)
	cmd.Use = "kubeparts-scheduler"
	os.Exit(cli.Run(cmd))
}
