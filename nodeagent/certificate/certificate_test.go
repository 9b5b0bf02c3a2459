package certificate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient/kubeclienttest"
)

// fakeSigner approves and signs every CSR the fake API server receives
// (or denies them), with certificates valid for lifetime.
type fakeSigner struct {
	mu       sync.Mutex
	ca       *x509.Certificate
	key      *ecdsa.PrivateKey
	lifetime time.Duration
	deny     bool
	csrs     []*certificatesv1.CertificateSigningRequest
}

func newFakeSigner(t *testing.T, lifetime time.Duration) *fakeSigner {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &fakeSigner{ca: ca, key: key, lifetime: lifetime}
}

func (s *fakeSigner) client() *fake.Clientset {
	cs := fake.NewClientset()
	serial := int64(100)
	cs.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		csr := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest).DeepCopy()
		s.mu.Lock()
		defer s.mu.Unlock()
		csr.Name = csr.GenerateName + strings.Repeat("x", len(s.csrs)+1)
		s.csrs = append(s.csrs, csr)
		if s.deny {
			csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateDenied, Status: "True", Reason: "NotMine", Message: "no"}}
		} else {
			block, _ := pem.Decode(csr.Spec.Request)
			req, err := x509.ParseCertificateRequest(block.Bytes)
			if err != nil {
				return true, nil, err
			}
			serial++
			now := time.Now()
			der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: req.Subject,
				DNSNames: req.DNSNames, IPAddresses: req.IPAddresses, NotBefore: now, NotAfter: now.Add(s.lifetime)}, s.ca, req.PublicKey, s.key)
			if err != nil {
				return true, nil, err
			}
			csr.Status.Certificate = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		}
		if err := cs.Tracker().Add(csr); err != nil {
			return true, nil, err
		}
		return true, csr, nil
	})
	return cs
}

func (s *fakeSigner) requests() []*certificatesv1.CertificateSigningRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.csrs)
}

// The CSRs the kubelet sends: its identity, the signer and usages of each
// certificate, the serving one for the node's names and addresses.
func TestRequest(t *testing.T) {
	signer := newFakeSigner(t, time.Hour)
	client := kubeclienttest.FromClientset(signer.client()).CertificatesV1()
	ctx := context.Background()
	certPEM, _, err := Request(ctx, client, ServingTemplate("n1", []string{"n1"}, []net.IP{net.ParseIP("192.0.2.7")}), ServingSigner, ServingUsages, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := firstCertificate(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "system:node:n1" || !slices.Equal(cert.Subject.Organization, []string{"system:nodes"}) ||
		!slices.Equal(cert.DNSNames, []string{"n1"}) || len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("192.0.2.7")) {
		t.Errorf("certificate for %v %v %v %v", cert.Subject, cert.DNSNames, cert.IPAddresses, cert.Subject.Organization)
	}
	csr := signer.requests()[0]
	if csr.Spec.SignerName != "kubernetes.io/kubelet-serving" || !slices.Equal(csr.Spec.Usages, []certificatesv1.KeyUsage{"digital signature", "server auth"}) {
		t.Errorf("CSR %s usages %v", csr.Spec.SignerName, csr.Spec.Usages)
	}

	signer.deny = true
	if _, _, err := Request(ctx, client, ClientTemplate("n1"), ClientSigner, ClientUsages, time.Minute); err == nil || !strings.Contains(err.Error(), "Denied: NotMine") {
		t.Errorf("a denied CSR: %v, want an error saying so", err)
	}
}

// A CSR nobody approves ends in an error naming it and the command that
// approves it, not a hang.
func TestRequestNotApproved(t *testing.T) {
	cs := fake.NewClientset()
	_, _, err := Request(context.Background(), kubeclienttest.FromClientset(cs).CertificatesV1(), ClientTemplate("n1"), ClientSigner, ClientUsages, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "kubectl certificate approve") {
		t.Errorf("err %v, want one saying how to approve", err)
	}
}

// The kubelet renews at a random point between 70% and 90% of a
// certificate's lifetime.
func TestRotationDeadline(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	cert := &x509.Certificate{NotBefore: start, NotAfter: start.Add(100 * time.Hour)}
	for _, tc := range []struct {
		jitter float64
		want   time.Duration
	}{{0, 70 * time.Hour}, {0.5, 80 * time.Hour}, {0.999999, 90 * time.Hour}} {
		m := &Manager{jitter: func() float64 { return tc.jitter }}
		if got := m.RotationDeadline(cert).Sub(start); got.Round(time.Minute) != tc.want {
			t.Errorf("jitter %v: renewed %s in, want %s", tc.jitter, got, tc.want)
		}
	}
}

// The manager gets a certificate when there is none, stores it where the
// kubelet keeps it, and renews it before it expires.
func TestManagerRotates(t *testing.T) {
	signer := newFakeSigner(t, 3*time.Second)
	store := Store{Dir: t.TempDir(), Prefix: "kubelet-client"}
	m := &Manager{Store: store, Client: kubeclienttest.FromClientset(signer.client()).CertificatesV1(), Signer: ClientSigner, Usages: ClientUsages,
		Timeout: time.Minute, Template: func() *x509.CertificateRequest { return ClientTemplate("n1") }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	var first *big.Int
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cur, err := store.Current(); err == nil {
			if first == nil {
				first = cur.Leaf.SerialNumber
			} else if cur.Leaf.SerialNumber.Cmp(first) != 0 {
				if m.Current() == nil || m.Current().Leaf.Subject.CommonName != "system:node:n1" {
					t.Fatalf("manager's current certificate %v", m.Current())
				}
				return // renewed
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // polling the store with a deadline
	}
	t.Fatalf("no renewal within 30 s of a 3 s certificate (first %v, CSRs %d)", first, len(signer.requests()))
}
