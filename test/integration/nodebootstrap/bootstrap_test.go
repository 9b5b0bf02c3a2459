// Package nodebootstrap joins kubeparts-nodeagent to a real kube-apiserver
// the way kubeadm joins a kubelet: a bootstrap token, a CSR for the signer
// kubernetes.io/kube-apiserver-client-kubelet approved and signed by the
// stock kube-controller-manager (csrapproving, csrsigning), the Node
// authorizer and NodeRestriction on.
package nodebootstrap

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeparts/kubeparts/test/integration/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	os.Exit(framework.MainWith(m, "nodebootstrap", &env, []framework.StartOption{framework.WithClientCA()}))
}

const (
	tokenID     = "abcdef"
	tokenSecret = "0123456789abcdef"
)

// setUpJoin creates what `kubeadm init` leaves for nodes to join: a
// bootstrap token, the bindings that let its group request node client
// certificates (auto-approved) and nodes renew theirs, and runs the stock
// CSR approver and signer.
func setUpJoin(t *testing.T) {
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "bootstrap-token-" + tokenID},
		Type: corev1.SecretTypeBootstrapToken, StringData: map[string]string{
			"token-id": tokenID, "token-secret": tokenSecret, "usage-bootstrap-authentication": "true",
			"auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
			"expiration":        time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		}}
	if _, err := env.Client.CoreV1().Secrets("kube-system").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]struct{ role, group string }{
		"kubeadm:kubelet-bootstrap":                     {"system:node-bootstrapper", "system:bootstrappers:kubeadm:default-node-token"},
		"kubeadm:node-autoapprove-bootstrap":            {"system:certificates.k8s.io:certificatesigningrequests:nodeclient", "system:bootstrappers:kubeadm:default-node-token"},
		"kubeadm:node-autoapprove-certificate-rotation": {"system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "system:nodes"},
	} {
		crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: b.role},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: b.group}}}
		if _, err := env.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pki := filepath.Join(env.LogDir, "pki")
	env.Run(t, "kube-controller-manager", "--kubeconfig="+env.WriteKubeconfig(t), "--controllers=csrapproving,csrsigning",
		"--cluster-signing-cert-file="+filepath.Join(pki, "client-ca.crt"), "--cluster-signing-key-file="+filepath.Join(pki, "client-ca.key"),
		"--leader-elect=false", "--secure-port=0")
}

// bootstrapKubeconfig is what kubeadm join writes to bootstrap-kubelet.conf.
func bootstrapKubeconfig(t *testing.T, token string) string {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubernetes"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	kc.AuthInfos["tls-bootstrap-token-user"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["tls-bootstrap-token-user@kubernetes"] = &clientcmdapi.Context{Cluster: "kubernetes", AuthInfo: "tls-bootstrap-token-user"}
	kc.CurrentContext = "tls-bootstrap-token-user@kubernetes"
	path := filepath.Join(t.TempDir(), "bootstrap-kubelet.conf")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func nodeCSRs(t *testing.T, node string) []certificatesv1.CertificateSigningRequest {
	list, err := env.Client.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []certificatesv1.CertificateSigningRequest
	for _, csr := range list.Items {
		block, _ := pem.Decode(csr.Spec.Request)
		if block == nil {
			continue
		}
		if req, err := x509.ParseCertificateRequest(block.Bytes); err == nil && req.Subject.CommonName == "system:node:"+node {
			out = append(out, csr)
		}
	}
	return out
}

// TestTLSBootstrap: an agent with only a bootstrap token joins, gets its
// client certificate approved and signed by the stock controllers, writes
// the kubelet's files, and runs as system:node:<name> (the Node authorizer
// lets it keep its Node Ready). Restarted, it keeps its certificate.
func TestTLSBootstrap(t *testing.T) {
	setUpJoin(t)
	ctx := context.Background()
	dir := t.TempDir()
	kubeconfig, certDir := filepath.Join(dir, "kubelet.conf"), filepath.Join(dir, "pki")
	args := []string{"--bootstrap-kubeconfig=" + bootstrapKubeconfig(t, tokenID+"."+tokenSecret), "--kubeconfig=" + kubeconfig,
		"--cert-dir=" + certDir, "--hostname-override=joined", "--rotate-certificates", "--runtime=simulated"}
	agent := env.Run(t, "kubeparts-nodeagent", args...)
	ready := func() error {
		n, err := env.Client.CoreV1().Nodes().Get(ctx, "joined", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not Ready: %+v", n.Status.Conditions)
	}
	framework.Eventually(t, 60*time.Second, "the joined node Ready", ready)

	csrs := nodeCSRs(t, "joined")
	if len(csrs) != 1 {
		t.Fatalf("%d CSRs for the node, want 1", len(csrs))
	}
	csr := csrs[0]
	approved := false
	for _, c := range csr.Status.Conditions {
		approved = approved || (c.Type == certificatesv1.CertificateApproved && c.Reason == "AutoApproved")
	}
	if !approved || csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName || csr.Spec.Username != "system:bootstrap:"+tokenID {
		t.Errorf("CSR %s: signer %s by %s, conditions %+v: want auto-approved, from the bootstrap token", csr.Name, csr.Spec.SignerName, csr.Spec.Username, csr.Status.Conditions)
	}
	// The kubelet's files: the kubeconfig points at the current certificate.
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	current := filepath.Join(certDir, "kubelet-client-current.pem")
	for _, auth := range cfg.AuthInfos {
		if auth.ClientCertificate != current || auth.ClientKey != current {
			t.Errorf("kubeconfig credentials %s %s, want %s", auth.ClientCertificate, auth.ClientKey, current)
		}
	}
	pemData, err := os.ReadFile(current)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemData)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "system:node:joined" || cert.Issuer.CommonName != "client-ca" {
		t.Errorf("certificate for %s issued by %s", cert.Subject, cert.Issuer)
	}

	// Restarted, it keeps its certificate: no second CSR, still Ready.
	agent.Stop()
	restartedAt := time.Now()
	env.Run(t, "kubeparts-nodeagent", args...)
	framework.Eventually(t, 60*time.Second, "the Lease renewed after the restart", func() error {
		l, err := env.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "joined", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if l.Spec.RenewTime == nil || l.Spec.RenewTime.Time.Before(restartedAt.Truncate(time.Second)) {
			return fmt.Errorf("lease renewed %v", l.Spec.RenewTime)
		}
		return nil
	})
	if n := len(nodeCSRs(t, "joined")); n != 1 {
		t.Errorf("%d CSRs after a restart, want still 1", n)
	}
}

// A bad bootstrap token stops the agent with the API's answer, rather than
// leaving it waiting.
func TestTLSBootstrapBadToken(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, framework.Binary(t, "kubeparts-nodeagent"), "--bootstrap-kubeconfig="+bootstrapKubeconfig(t, "abcdef.ffffffffffffffff"),
		"--kubeconfig="+filepath.Join(dir, "kubelet.conf"), "--cert-dir="+filepath.Join(dir, "pki"), "--hostname-override=intruder", "--runtime=simulated").CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "Unauthorized") {
		t.Errorf("err %v, output:\n%s\nwant it to exit saying Unauthorized", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "kubelet.conf")); err == nil {
		t.Error("a kubeconfig was written without a certificate")
	}
}
