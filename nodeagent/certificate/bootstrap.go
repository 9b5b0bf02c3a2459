package certificate

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
)

// Bootstrap makes sure kubeconfig holds the node's credentials, as the
// kubelet's TLS bootstrap does: a kubeconfig whose client certificate is
// still valid (or that authenticates otherwise) is kept; else, with a
// valid certificate in store, a kubeconfig for it is written; else the
// certificate is requested with the bootstrap kubeconfig's credentials (a
// bootstrap token, approved by the stock CSR approver) and the kubeconfig
// written, pointing at the store's current file so that rotation needs no
// rewrite. The cluster (server, CA) is the bootstrap kubeconfig's.
func Bootstrap(ctx context.Context, kubeconfig, bootstrapKubeconfig string, store Store, nodeName string, timeout time.Duration) error {
	if ok, err := usable(kubeconfig); ok || err != nil {
		return err
	}
	if bootstrapKubeconfig == "" {
		return fmt.Errorf("--kubeconfig %s: missing or its certificate expired, and no --bootstrap-kubeconfig to get one", kubeconfig)
	}
	bootCfg, err := clientcmd.BuildConfigFromFlags("", bootstrapKubeconfig)
	if err != nil {
		return fmt.Errorf("--bootstrap-kubeconfig: %w", err)
	}
	logger := klog.FromContext(ctx)
	if cert, err := store.Current(); err == nil && time.Now().Before(cert.Leaf.NotAfter) {
		logger.Info("Using the node's current client certificate", "file", store.Path())
		return writeKubeconfig(kubeconfig, bootCfg, store.Path())
	}
	bootCfg.UserAgent = "kubeparts-nodeagent/bootstrap"
	client, err := kubeclient.NewForConfig(bootCfg)
	if err != nil {
		return err
	}
	logger.Info("TLS bootstrap: requesting the node's client certificate", "node", nodeName, "server", bootCfg.Host)
	certPEM, keyPEM, err := Request(ctx, client.CertificatesV1(), ClientTemplate(nodeName), ClientSigner, ClientUsages, timeout)
	if err != nil {
		return fmt.Errorf("TLS bootstrap: %w", err)
	}
	if err := store.Update(certPEM, keyPEM, time.Now()); err != nil {
		return err
	}
	return writeKubeconfig(kubeconfig, bootCfg, store.Path())
}

// usable: the kubeconfig exists and its credentials are not an expired
// client certificate.
func usable(path string) (bool, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return false, fmt.Errorf("--kubeconfig: %w", err)
	}
	certPEM := cfg.CertData
	if len(certPEM) == 0 && cfg.CertFile != "" {
		if certPEM, err = os.ReadFile(cfg.CertFile); err != nil {
			return false, nil // its certificate is gone: bootstrap again
		}
	}
	if len(certPEM) == 0 {
		return true, nil // a token or another credential
	}
	cert, err := firstCertificate(certPEM)
	if err != nil {
		return false, nil
	}
	return time.Now().Before(cert.NotAfter), nil
}

func firstCertificate(data []byte) (*x509.Certificate, error) {
	certs, err := parseCertificates(data)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// writeKubeconfig writes the node's kubeconfig: the cluster of cfg, the
// client certificate and key both in certFile (the kubelet's layout).
func writeKubeconfig(path string, cfg *rest.Config, certFile string) error {
	cluster := &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData, CertificateAuthority: cfg.CAFile,
		InsecureSkipTLSVerify: cfg.Insecure, TLSServerName: cfg.ServerName}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["default-cluster"] = cluster
	kc.AuthInfos["default-auth"] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: certFile}
	kc.Contexts["default-context"] = &clientcmdapi.Context{Cluster: "default-cluster", AuthInfo: "default-auth", Namespace: "default"}
	kc.CurrentContext = "default-context"
	return clientcmd.WriteToFile(*kc, path)
}
