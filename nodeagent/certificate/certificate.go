// Package certificate gets the node its certificates from the cluster, as
// the kubelet does: TLS bootstrap (a client certificate requested with a
// bootstrap token through a CertificateSigningRequest for the signer
// kubernetes.io/kube-apiserver-client-kubelet, which the stock CSR approver
// approves), rotation before expiry, and the kubelet API's serving
// certificate (signer kubernetes.io/kubelet-serving) when serverTLSBootstrap
// is set. Certificates live where the kubelet keeps them:
// <cert-dir>/kubelet-client-current.pem (certificate and key in one file, a
// symlink to the newest kubelet-client-<time>.pem), so the tooling that
// reads the kubelet's files reads the agent's.
package certificate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
)

// The signers and usages of the kubelet's certificates.
const (
	ClientSigner  = certificatesv1.KubeAPIServerClientKubeletSignerName
	ServingSigner = certificatesv1.KubeletServingSignerName
)

// Store keeps one certificate and its key in a PEM file under Dir, as the
// kubelet does: <Prefix>-<time>.pem, and <Prefix>-current.pem pointing at
// the newest.
type Store struct{ Dir, Prefix string }

// Path is the current certificate's file (certificate, then key).
func (s Store) Path() string { return filepath.Join(s.Dir, s.Prefix+"-current.pem") }

// Current loads the current certificate; os.ErrNotExist when there is none.
func (s Store) Current() (*tls.Certificate, error) {
	data, err := os.ReadFile(s.Path())
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Path(), err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Path(), err)
		}
	}
	return &cert, nil
}

// Update writes a new certificate and key, then points the current link at
// them (a rename, so readers never see half a file).
func (s Store) Update(certPEM, keyPEM []byte, now time.Time) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	name := fmt.Sprintf("%s-%s.pem", s.Prefix, now.UTC().Format("2006-01-02-15-04-05.000000000"))
	if err := os.WriteFile(filepath.Join(s.Dir, name), append(append([]byte{}, certPEM...), keyPEM...), 0o600); err != nil {
		return err
	}
	tmp := s.Path() + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(name, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, s.Path())
}

// Request asks for a certificate for template, signed by signer, and waits
// until it is issued: a CSR that is denied, fails, or is not signed within
// timeout is an error saying so (with the command that approves it).
func Request(ctx context.Context, client kubeclient.CertificatesV1Interface, template *x509.CertificateRequest, signer string, usages []certificatesv1.KeyUsage, timeout time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, template, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	csrs := client.CertificateSigningRequests()
	csr, err := csrs.Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "csr-"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: signer, Usages: usages,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("creating a CertificateSigningRequest for %s: %w", signer, err)
	}
	klog.FromContext(ctx).Info("Waiting for the certificate signing request", "csr", csr.Name, "signer", signer)
	certPEM, err = waitIssued(ctx, csrs, csr.Name, timeout)
	if err != nil {
		return nil, nil, err
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, nil, fmt.Errorf("CSR %s: the issued certificate does not match its key: %w", csr.Name, err)
	}
	return certPEM, keyPEM, nil
}

// waitIssued watches the CSR until it has a certificate.
func waitIssued(ctx context.Context, csrs kubeclient.CertificateSigningRequestInterface, name string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		rv := ""
		if csr, err := csrs.Get(ctx, name, metav1.GetOptions{}); err == nil {
			for _, c := range csr.Status.Conditions {
				if c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed {
					return nil, fmt.Errorf("CSR %s %s: %s %s", name, c.Type, c.Reason, c.Message)
				}
			}
			if len(csr.Status.Certificate) > 0 {
				return csr.Status.Certificate, nil
			}
			rv = csr.ResourceVersion
		}
		// Until it changes (or a minute, in case the watch drops), then look again.
		w, werr := csrs.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: rv, TimeoutSeconds: ptrTo(int64(60))})
		if werr == nil {
			waitForChange(ctx, w)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("CSR %s not issued within %s: approve it with `kubectl certificate approve %s`", name, timeout, name)
		}
		if werr != nil {
			select { // the API is unreachable: try again shortly
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// waitForChange returns when the watched object changes, the watch ends,
// or ctx does.
func waitForChange(ctx context.Context, w watch.Interface) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Modified || ev.Type == watch.Deleted {
				return
			}
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// ClientTemplate is the node's client certificate request: the identity
// the Node authorizer and NodeRestriction know.
func ClientTemplate(nodeName string) *x509.CertificateRequest {
	return &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}}}
}

// ClientUsages are the kubelet's for an ECDSA client certificate.
var ClientUsages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}

// ServingTemplate is the kubelet API's serving certificate request, for
// the node's names and addresses.
func ServingTemplate(nodeName string, hostnames []string, ips []net.IP) *x509.CertificateRequest {
	t := ClientTemplate(nodeName)
	t.DNSNames, t.IPAddresses = hostnames, ips
	return t
}

// ServingUsages are the kubelet's for an ECDSA serving certificate.
var ServingUsages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}

// Manager keeps one certificate of the node fresh: it requests one when
// the store has none (or an expired one), and a new one at a random point
// between 70% and 90% of the current one's lifetime, as the kubelet's
// certificate manager does, so a fleet of nodes does not renew at once.
type Manager struct {
	Store    Store
	Client   kubeclient.CertificatesV1Interface
	Template func() *x509.CertificateRequest
	Signer   string
	Usages   []certificatesv1.KeyUsage
	// Timeout bounds the wait for one CSR (then it is tried again).
	Timeout time.Duration

	now    func() time.Time
	jitter func() float64 // in [0, 1)

	mu      sync.Mutex
	current *tls.Certificate
}

// Current is the certificate in use (nil before the first is issued): the
// serving certificate's GetCertificate.
func (m *Manager) Current() *tls.Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current
}

func (m *Manager) clock() time.Time {
	if m.now == nil {
		return time.Now()
	}
	return m.now()
}

// RotationDeadline is when cert is renewed: 70% to 90% into its validity.
func (m *Manager) RotationDeadline(cert *x509.Certificate) time.Time {
	j := mathrand.Float64()
	if m.jitter != nil {
		j = m.jitter()
	}
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(time.Duration(float64(lifetime) * (0.7 + 0.2*j)))
}

// rotate requests a new certificate and stores it.
func (m *Manager) rotate(ctx context.Context) error {
	certPEM, keyPEM, err := Request(ctx, m.Client, m.Template(), m.Signer, m.Usages, m.Timeout)
	if err != nil {
		return err
	}
	if err := m.Store.Update(certPEM, keyPEM, m.clock()); err != nil {
		return err
	}
	return m.load()
}

func (m *Manager) load() error {
	cert, err := m.Store.Current()
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.current = cert
	m.mu.Unlock()
	return nil
}

// Run renews the certificate until ctx ends; failures are logged and
// retried with back-off (up to five minutes), as the kubelet retries.
func (m *Manager) Run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithValues("signer", m.Signer)
	if err := m.load(); err != nil && !errors.Is(err, os.ErrNotExist) {
		logger.Error(err, "Reading the current certificate; requesting a new one")
	}
	backoff := time.Second
	for {
		wait := time.Duration(0)
		if cur := m.Current(); cur != nil {
			wait = m.RotationDeadline(cur.Leaf).Sub(m.clock())
		}
		if wait > 0 {
			logger.V(2).Info("Certificate rotation scheduled", "in", wait.Round(time.Second))
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if err := m.rotate(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			logger.Error(err, "Certificate rotation failed", "retryIn", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Minute)
			continue
		}
		backoff = time.Second
		logger.Info("Certificate rotated", "notAfter", m.Current().Leaf.NotAfter)
	}
}

// parseCertificates reads the PEM certificates of data (a key beside them
// is skipped).
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate")
	}
	return out, nil
}
