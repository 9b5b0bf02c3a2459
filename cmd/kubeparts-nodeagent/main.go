// Command kubeparts-nodeagent runs the node role in place of the kubelet:
// it registers the Node, runs the pods bound to it through the CRI
// (containerd, or an in-process simulated runtime hosting many nodes) and
// serves the kubelet API (see package nodeagent).
//
// Flags are parsed by internal/leanflags (pflag and klog's own flags), not
// component-base's cli: every linked megabyte is resident in every node's
// agent (see package nodeagent/kubeclient).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/klog/v2"

	"github.com/kubeparts/kubeparts/internal/leanflags"
	"github.com/kubeparts/kubeparts/nodeagent"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// gcPercent is the agent's GOGC unless the environment sets one. Go's
// default (100) never lets the heap goal fall below 4 MB; the agent's live
// heap is about 2 MB and it idles most of its life on every node, so half the
// headroom saves about 1.5 MB of its resident set (`make bench`), for more
// frequent GC cycles that each cost little with so small a heap.
const gcPercent = 50

func run(args []string) int {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	o := nodeagent.NewOptions()
	fs, _, code, ok := leanflags.Parse("kubeparts-nodeagent", "node agent: registers the node, runs its pods through the CRI, serves the kubelet API", args, os.Stderr, o.AddFlags)
	if !ok {
		return code
	}
	defer klog.Flush()
	// The kubelet's order: the --config file, then the command line over it.
	if err := o.ApplyConfigFile(fs); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	o.Complete(fs)
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
