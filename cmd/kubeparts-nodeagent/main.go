// Command kubeparts-nodeagent will run a node's pods through CRI in place of the kubelet.
// Until it is implemented it refuses to start, so nothing mistakes it for a working piece.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "kubeparts-nodeagent: not implemented yet (tracked as its own issue); `kubeparts up` runs the stock kubelet")
	os.Exit(1)
}
