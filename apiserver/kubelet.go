package apiserver

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	corev1 "k8s.io/api/core/v1"
	restclient "k8s.io/client-go/rest"
)

// kubeletClient is the HTTP client for the nodes' /metrics/resource: TLS
// trusting --kubelet-certificate-authority (else the kubeconfig's CA, which
// signs kubelet serving certificates in kubeadm-style clusters), and the
// kubelet client certificate if given, else the kubeconfig's own credentials
// (a ServiceAccount token works: the kubelet checks it with TokenReview and
// SubjectAccessReview on nodes/metrics).
func (o *Options) kubeletClient(apiserver *restclient.Config) (*http.Client, error) {
	cfg := restclient.AnonymousClientConfig(apiserver)
	cfg.BearerToken, cfg.BearerTokenFile = apiserver.BearerToken, apiserver.BearerTokenFile
	cfg.TLSClientConfig = restclient.TLSClientConfig{
		CAFile: apiserver.CAFile, CAData: apiserver.CAData,
		CertFile: apiserver.CertFile, CertData: apiserver.CertData, KeyFile: apiserver.KeyFile, KeyData: apiserver.KeyData,
	}
	if o.Kubelet.CAFile != "" {
		cfg.CAFile, cfg.CAData = o.Kubelet.CAFile, nil
		if _, err := readCA(o.Kubelet.CAFile); err != nil {
			return nil, err
		}
	}
	if o.Kubelet.ClientCertFile != "" {
		cfg.CertFile, cfg.KeyFile, cfg.CertData, cfg.KeyData = o.Kubelet.ClientCertFile, o.Kubelet.ClientKeyFile, nil, nil
		cfg.BearerToken, cfg.BearerTokenFile = "", ""
	}
	if o.Kubelet.InsecureSkipTLSVerify {
		cfg.Insecure, cfg.CAFile, cfg.CAData = true, "", nil
	}
	rt, err := restclient.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubelet client: %w", err)
	}
	return &http.Client{Transport: rt}, nil
}

func readCA(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--kubelet-certificate-authority: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--kubelet-certificate-authority %s: no PEM certificates", path)
	}
	return pool, nil
}

// slimNode keeps what scraping and the API need (name, labels, addresses,
// kubelet port, readiness) and drops the rest, chiefly the image list, which
// dominates a node object's size.
func slimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	n.ManagedFields = nil
	n.Annotations = nil
	n.Status.Images = nil
	n.Status.VolumesAttached, n.Status.VolumesInUse = nil, nil
	n.Spec.Taints = nil
	return n, nil
}

func addressTypes(names []string) []corev1.NodeAddressType {
	out := make([]corev1.NodeAddressType, 0, len(names))
	for _, n := range names {
		out = append(out, corev1.NodeAddressType(n))
	}
	return out
}
