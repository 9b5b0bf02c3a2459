// Command kubeparts-scheduler will be the upstream scheduler runtime with kubeparts'
// plugins. Until it is implemented it refuses to start, so nothing mistakes it for a
// working piece.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "kubeparts-scheduler: not implemented yet (tracked as its own issue); `kubeparts up` runs the stock kube-scheduler")
	os.Exit(1)
}
