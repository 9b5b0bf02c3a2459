package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeparts/kubeparts/internal/swap"
)

// swapRole is `kubeparts swap ROLE --to kubeparts|stock`, on a kubeadm control-plane host.
func swapRole(args []string) error {
	fs := pflag.NewFlagSet("swap", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: kubeparts swap scheduler|controller-manager --to kubeparts|stock [flags]\n\n"+
			"On a kubeadm control-plane host: edits the static-pod manifests (files saved first), waits\n"+
			"until the new piece is Ready and holds its Lease, and puts everything back if it does not.\n\n")
		fs.PrintDefaults()
	}
	to := fs.String("to", "", "kubeparts or stock")
	host, _ := os.Hostname()
	nodeName := fs.String("node-name", host, "this host's Node name (mirror pods are <pod>-<node>)")
	manifests := fs.String("manifests-dir", "/etc/kubernetes/manifests", "the kubelet's static pod directory")
	configDir := fs.String("config-dir", "/etc/kubernetes", "where kubeadm keeps the components' kubeconfigs; backups go to its kubeparts-swap-backup/")
	kubeconfig := fs.String("kubeconfig", "/etc/kubernetes/admin.conf", "kubeconfig to watch the swap with")
	image := fs.String("image", "", "kubeparts image of the role (default: the one in config/kubeadm, docker.io/kubeparts/kubeparts-ROLE:dev)")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long the new piece has to become Ready and take its Lease before the swap is rolled back")
	dryRun := fs.Bool("dry-run", false, "print the changes as a diff and touch nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want one role, got %q", fs.Args())
	}
	h := swap.Host{ManifestsDir: *manifests, ConfigDir: *configDir, Image: *image}
	plan, err := swap.NewPlan(h, fs.Arg(0), *to)
	var nothing swap.ErrNothingToDo
	if errors.As(err, &nothing) {
		fmt.Println(nothing.Error())
		return nil
	}
	if err != nil {
		return err
	}
	if *dryRun {
		plan.Diff(os.Stdout)
		return nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("--kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = plan.Apply(ctx, h, swap.APIHealth{Client: client, Node: *nodeName}, *timeout, time.Now, os.Stdout)
	return err
}
