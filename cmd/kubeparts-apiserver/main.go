// Command kubeparts-apiserver will be the aggregated API server for metrics.k8s.io and
// controlplane.kubeparts.dev. Until it is implemented it refuses to start, so nothing
// mistakes it for a working piece.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "kubeparts-apiserver: not implemented yet (tracked as its own issue); `kubeparts up` leaves the role empty")
	os.Exit(1)
}
