// Command apiserver-certs writes the CA and serving certificate that
// config/apiserver deploys kubeparts-apiserver with: the APIServices carry the
// CA as caBundle (kustomize copies it), never insecureSkipTLSVerify.
//
//	go run ./hack/apiserver-certs config/apiserver/certs
//	kubectl apply -k config/apiserver
//
// Existing files are kept while they still cover the Service's names, so
// re-running it does not rotate anything by surprise.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubeparts/kubeparts/internal/pki"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: apiserver-certs DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	ca, err := pki.LoadOrCreateCA(dir, "ca", "kubeparts-apiserver-ca")
	if err == nil {
		_, err = ca.LoadOrIssue(dir, "tls", pki.Spec{
			CommonName: "kubeparts-apiserver", Server: true,
			DNSNames: []string{"kubeparts-apiserver", "kubeparts-apiserver.kube-system", "kubeparts-apiserver.kube-system.svc", "kubeparts-apiserver.kube-system.svc.cluster.local"},
		})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiserver-certs:", err)
		os.Exit(1)
	}
	fmt.Println("apiserver-certs: wrote", filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
}
