// Command pause is the process of the local cluster's sandbox image
// (registry.k8s.io/pause): it holds the pod's namespaces open, reaps the zombies it
// inherits as PID 1 of a shared PID namespace, and exits on SIGINT or SIGTERM
// (or at once with -v).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// As upstream pause: -v prints a version and exits 0 (handy as an init
	// container that completes).
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		os.Stdout.WriteString("pause (kubeparts)\n")
		os.Exit(0)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
