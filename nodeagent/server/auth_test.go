package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"encoding/pem"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient/kubeclienttest"
)

// Who a request is, as the kubelet's authenticators decide: a client
// certificate from the CA (CN and O), else a bearer token through a cached
// TokenReview, else anonymous only when enabled.
func TestAuthenticate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t, "ca")
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	good := clientCert(t, ca, caKey, "kube-apiserver-kubelet-client", "system:masters")
	other, otherKey := newCA(t, "other")
	stranger := clientCert(t, other, otherKey, "mallory", "system:masters")

	client := fake.NewClientset()
	reviews := 0
	client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		reviews++
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		if tr.Spec.Token == "valid" {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "system:serviceaccount:ns:sa", Groups: []string{"system:serviceaccounts"}}}
		}
		return true, tr, nil
	})
	a, err := newAuth(kubeclienttest.FromClientset(client), "n1", caFile, false, false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		cert  *x509.Certificate
		token string
		want  string // user name, or "" for unauthenticated
	}{
		{"client certificate", good, "", "kube-apiserver-kubelet-client"},
		{"foreign certificate, no token", stranger, "", ""},
		{"foreign certificate, valid token", stranger, "valid", "system:serviceaccount:ns:sa"},
		{"valid token", nil, "valid", "system:serviceaccount:ns:sa"},
		{"bad token", nil, "bad", ""},
		{"nothing", nil, "", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/pods", nil)
		if tt.cert != nil {
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{tt.cert}}
		}
		if tt.token != "" {
			r.Header.Set("Authorization", "Bearer "+tt.token)
		}
		u, err := a.authenticate(r)
		got := ""
		if err == nil {
			got = u.name
		}
		if got != tt.want {
			t.Errorf("%s: got %q (%v), want %q", tt.name, got, err, tt.want)
		}
		if tt.name == "client certificate" && err == nil && (len(u.groups) != 1 || u.groups[0] != "system:masters") {
			t.Errorf("groups %v", u.groups)
		}
	}
	if reviews != 2 {
		t.Errorf("%d TokenReviews, want 2 (valid once, then cached; bad once)", reviews)
	}
	a.anonymous = true
	if u, err := a.authenticate(httptest.NewRequest("GET", "/pods", nil)); err != nil || u.name != "system:anonymous" {
		t.Errorf("anonymous: %v %v", u, err)
	}
}

// Authorization asks a SubjectAccessReview about the node's subresource
// and caches the answer.
func TestAuthorize(t *testing.T) {
	client := fake.NewClientset()
	var asked []authorizationv1.ResourceAttributes
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		asked = append(asked, *sar.Spec.ResourceAttributes)
		sar.Status.Allowed = sar.Spec.User == "admin" || sar.Spec.ResourceAttributes.Subresource == "metrics"
		return true, sar, nil
	})
	a, _ := newAuth(kubeclienttest.FromClientset(client), "n1", "", false, false)
	ctx := context.Background()
	check := func(user, sub string, want bool) {
		t.Helper()
		if got, err := a.authorize(ctx, &userInfo{name: user}, attributes{"get", sub}); err != nil || got != want {
			t.Errorf("%s %s: %v %v, want %v", user, sub, got, err, want)
		}
	}
	check("admin", "proxy", true)
	check("viewer", "proxy", false)
	check("viewer", "metrics", true)
	check("viewer", "proxy", false) // cached
	if len(asked) != 3 || asked[0].Resource != "nodes" || asked[0].Name != "n1" || asked[0].Subresource != "proxy" {
		t.Errorf("reviews %+v", asked)
	}
}

// newCA returns a self-signed CA and its key.
func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

// clientCert is a client certificate for cn in group org signed by ca.
func clientCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn, org string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: []string{org}}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}
