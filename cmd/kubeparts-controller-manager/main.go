// Command kubeparts-controller-manager will run kubeparts' controller-runtime
// reconcilers in place of kube-controller-manager controllers. Until it is implemented it
// refuses to start, so nothing mistakes it for a working piece.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "kubeparts-controller-manager: not implemented yet (tracked as its own issue); `kubeparts up` runs the stock kube-controller-manager")
	os.Exit(1)
}
