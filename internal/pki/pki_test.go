package pki

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadOrIssue(t *testing.T) {
	base := Spec{CommonName: "kube-apiserver", Server: true, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	for _, tc := range []struct {
		name    string
		second  Spec
		newCA   bool // the second issue comes from a different CA
		reissue bool
	}{
		{name: "same spec is reused", second: base},
		{name: "subset of names is reused", second: Spec{CommonName: "kube-apiserver", Server: true, DNSNames: []string{"localhost"}}},
		{name: "new IP SAN reissues", second: Spec{CommonName: "kube-apiserver", Server: true, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(192, 0, 2, 7)}}, reissue: true},
		{name: "new DNS SAN reissues", second: Spec{CommonName: "kube-apiserver", Server: true, DNSNames: []string{"localhost", "kubernetes"}, IPs: base.IPs}, reissue: true},
		{name: "other common name reissues", second: Spec{CommonName: "etcd", Server: true, DNSNames: base.DNSNames, IPs: base.IPs}, reissue: true},
		{name: "other organization reissues", second: Spec{CommonName: "kube-apiserver", Organization: []string{"system:masters"}, Server: true, DNSNames: base.DNSNames, IPs: base.IPs}, reissue: true},
		{name: "other CA reissues", second: base, newCA: true, reissue: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ca, err := LoadOrCreateCA(dir, "ca", "test-ca")
			if err != nil {
				t.Fatal(err)
			}
			first, err := ca.LoadOrIssue(dir, "leaf", base)
			if err != nil {
				t.Fatal(err)
			}
			if tc.newCA {
				if ca, err = LoadOrCreateCA(t.TempDir(), "ca", "other-ca"); err != nil {
					t.Fatal(err)
				}
			}
			second, err := ca.LoadOrIssue(dir, "leaf", tc.second)
			if err != nil {
				t.Fatal(err)
			}
			if reissued := string(first.CertPEM) != string(second.CertPEM); reissued != tc.reissue {
				t.Fatalf("reissued = %v, want %v", reissued, tc.reissue)
			}
			cert := parse(t, second.CertFile)
			if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
				t.Fatalf("leaf not signed by the CA in use: %v", err)
			}
			for _, ip := range tc.second.IPs {
				if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
					t.Errorf("leaf lacks IP SAN %s", ip)
				}
			}
		})
	}
}

func TestKeyUsages(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, "ca", "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec Spec
		want []x509.ExtKeyUsage
	}{
		{Spec{CommonName: "server", Server: true}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{Spec{CommonName: "client", Client: true}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{Spec{CommonName: "both", Server: true, Client: true}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
	} {
		pair, err := ca.LoadOrIssue(dir, tc.spec.CommonName, tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := parse(t, pair.CertFile).ExtKeyUsage; !slices.Equal(got, tc.want) {
			t.Errorf("%s: ext key usage %v, want %v", tc.spec.CommonName, got, tc.want)
		}
	}
	// A client certificate must verify against the CA as a client (kube-apiserver does).
	pair, _ := ca.LoadOrIssue(dir, "client", Spec{CommonName: "client", Client: true})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := parse(t, pair.CertFile).Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify: %v", err)
	}
}

func TestCAIsReusedAndBrokenFilesAreReported(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadOrCreateCA(dir, "ca", "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCA(dir, "ca", "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cert.Equal(first.Cert) {
		t.Fatal("CA regenerated although its files exist: every issued certificate would break")
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(dir, "ca", "test-ca"); err == nil {
		t.Fatal("a corrupt CA key was silently replaced")
	}
}

func TestKeyPairIsStable(t *testing.T) {
	dir := t.TempDir()
	key, pub, err := LoadOrCreateKeyPair(dir, "sa")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(key)
	if _, _, err := LoadOrCreateKeyPair(dir, "sa"); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(key)
	if string(before) != string(after) {
		t.Fatal("service-account key regenerated: existing tokens would stop verifying")
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	if _, err := os.Stat(pub); err != nil {
		t.Fatal(err)
	}
}

func parse(t *testing.T, certFile string) *x509.Certificate {
	t.Helper()
	cert, _, _, _, err := load(certFile, strings.TrimSuffix(certFile, ".crt")+".key")
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
