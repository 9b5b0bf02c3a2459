// Package framework gives integration tests a real etcd and kube-apiserver, the stock
// v1.36.3 binaries from bin/ (built by `make upstream`), started once per test package
// through controller-runtime's envtest. Component output goes to files under
// test/logs/<package>/ so a failing test can be read after the fact.
package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubeparts/kubeparts/internal/pki"
)

// Env is a running control plane.
type Env struct {
	// Config is an admin client config for the apiserver (content type left to the
	// client: controller-runtime uses protobuf for built-in types, JSON for CRDs).
	Config *rest.Config
	Client kubernetes.Interface
	// LogDir holds etcd.log and kube-apiserver.log.
	LogDir string
	env    *envtest.Environment
	logs   []*os.File
}

// RepoRoot finds the module root by walking up to go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "hack", "upstream")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root not found above the working directory")
		}
		dir = parent
	}
}

// BinDir is $KUBEPARTS_BIN, or bin/ at the repository root.
func BinDir() (string, error) {
	if dir := os.Getenv("KUBEPARTS_BIN"); dir != "" {
		return filepath.Abs(dir)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}

// StartOption adjusts the control plane before it starts.
type StartOption func(e *envtest.Environment, logDir string) error

// WithAggregator makes kube-apiserver an aggregator able to proxy to an
// APIService backed by a host process: a front-proxy CA and client
// certificate (requestheader flags, as kubeadm sets them) and
// --enable-aggregator-routing, so the APIService's EndpointSlice is dialled
// directly without kube-proxy.
func WithAggregator() StartOption {
	return func(e *envtest.Environment, logDir string) error {
		dir := filepath.Join(logDir, "pki")
		ca, err := pki.LoadOrCreateCA(dir, "front-proxy-ca", "front-proxy-ca")
		if err != nil {
			return err
		}
		client, err := ca.LoadOrIssue(dir, "front-proxy-client", pki.Spec{CommonName: "front-proxy-client", Client: true})
		if err != nil {
			return err
		}
		args := e.ControlPlane.GetAPIServer().Configure()
		args.Set("requestheader-client-ca-file", ca.CertFile)
		args.Set("requestheader-allowed-names", "front-proxy-client")
		args.Set("requestheader-username-headers", "X-Remote-User")
		args.Set("requestheader-group-headers", "X-Remote-Group")
		args.Set("requestheader-extra-headers-prefix", "X-Remote-Extra-")
		args.Set("proxy-client-cert-file", client.CertFile)
		args.Set("proxy-client-key-file", client.KeyFile)
		args.Set("enable-aggregator-routing", "true")
		return nil
	}
}

// WithAuditLog has kube-apiserver write an audit log at Metadata level (who made
// each request, with which user agent) to <log dir>/audit.log: tests check which
// identity a component's requests carry there. Only the requests of users are
// logged when any are named (a benchmark's log would otherwise grow by gigabytes).
func WithAuditLog(users ...string) StartOption {
	return func(e *envtest.Environment, logDir string) error {
		policy := filepath.Join(logDir, "audit-policy.yaml")
		rules := "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n"
		if len(users) > 0 {
			quoted, _ := json.Marshal(users)
			rules += "  users: " + string(quoted) + "\n- level: None\n"
		}
		if err := os.WriteFile(policy, []byte(rules), 0o644); err != nil {
			return err
		}
		args := e.ControlPlane.GetAPIServer().Configure()
		args.Set("audit-policy-file", policy)
		args.Set("audit-log-path", filepath.Join(logDir, "audit.log"))
		args.Set("audit-log-mode", "blocking")
		return nil
	}
}

// Start starts etcd and kube-apiserver; name labels the log directory.
func Start(name string, opts ...StartOption) (*Env, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("%s not in %s: run `make upstream`", b, bin)
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	logDir := filepath.Join(root, "test", "logs", name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	e := &Env{LogDir: logDir, env: &envtest.Environment{BinaryAssetsDirectory: bin}}
	for _, file := range []string{"etcd.log", "kube-apiserver.log"} {
		f, err := os.Create(filepath.Join(logDir, file))
		if err != nil {
			e.closeLogs()
			return nil, err
		}
		e.logs = append(e.logs, f)
	}
	cp := &e.env.ControlPlane
	cp.Etcd = &envtest.Etcd{Out: e.logs[0], Err: e.logs[0]}
	apiserver := cp.GetAPIServer()
	apiserver.Out, apiserver.Err = e.logs[1], e.logs[1]
	for _, o := range opts {
		if err := o(e.env, logDir); err != nil {
			e.closeLogs()
			return nil, err
		}
	}
	if e.Config, err = e.env.Start(); err != nil {
		e.closeLogs()
		return nil, fmt.Errorf("start control plane (logs in %s): %w", logDir, err)
	}
	// Test drivers (fake kubelets, fixtures) must never be the bottleneck.
	e.Config.QPS, e.Config.Burst = 500, 1000
	// Config stays content-type neutral: controller-runtime picks protobuf for built-in
	// types and JSON for CRDs by itself; the clientset speaks protobuf.
	cs := rest.CopyConfig(e.Config)
	cs.ContentType = "application/vnd.kubernetes.protobuf"
	if e.Client, err = kubernetes.NewForConfig(cs); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error {
	err := e.env.Stop()
	e.closeLogs()
	return err
}

func (e *Env) closeLogs() {
	for _, f := range e.logs {
		_ = f.Close()
	}
}

// Main is a TestMain body: it starts the control plane into *env, runs each setup (to
// start controllers under test; they must stop when ctx ends), runs the tests and stops
// everything.
func Main(m *testing.M, name string, env **Env, setups ...func(ctx context.Context, e *Env) error) int {
	return MainWith(m, name, env, nil, setups...)
}

// MainWith is Main with options for the control plane.
func MainWith(m *testing.M, name string, env **Env, opts []StartOption, setups ...func(ctx context.Context, e *Env) error) int {
	e, err := Start(name, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	*env = e
	// Controllers under test log to test/logs/<name>/controllers.log.
	if f, err := os.Create(filepath.Join(e.LogDir, "controllers.log")); err == nil {
		defer f.Close()
		ctrl.SetLogger(zap.New(zap.WriteTo(f), zap.UseDevMode(true)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	for _, setup := range setups {
		if err := setup(ctx, e); err != nil {
			fmt.Fprintln(os.Stderr, "integration: setup:", err)
			cancel()
			_ = e.Stop()
			return 1
		}
	}
	code := m.Run()
	cancel()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: stop:", err)
	}
	return code
}

// Binary returns the path of a built binary in bin/, failing the test with
// what to run when it is missing.
func Binary(t testing.TB, name string) string {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(bin, name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s missing: run `make build upstream`", path)
	}
	return path
}

// WithClientCA has kube-apiserver trust client certificates of a CA whose
// key is on disk (<log dir>/pki/client-ca.crt and .key), so a test can run
// a signer with it (kube-controller-manager's csrsigning), and turns on what
// a kubeadm cluster has for nodes joining: bootstrap tokens, the Node
// authorizer and NodeRestriction.
func WithClientCA() StartOption {
	return func(e *envtest.Environment, logDir string) error {
		dir := filepath.Join(logDir, "pki")
		ca, err := pki.LoadOrCreateCA(dir, "client-ca", "client-ca")
		if err != nil {
			return err
		}
		apiserver := e.ControlPlane.GetAPIServer()
		apiserver.SecureServing.Authn = &caAuthn{ca: ca, dir: dir}
		args := apiserver.Configure()
		args.Set("enable-bootstrap-token-auth", "true")
		args.Set("authorization-mode", "Node,RBAC")
		args.Append("enable-admission-plugins", "NodeRestriction")
		return nil
	}
}

// caAuthn is envtest's client certificate authentication with a CA of ours.
type caAuthn struct {
	ca  *pki.CA
	dir string
}

func (a *caAuthn) Configure(_ string, args *envtest.Arguments) error {
	args.Set("client-ca-file", a.ca.CertFile)
	return nil
}

func (a *caAuthn) Start() error { return nil }
func (a *caAuthn) Stop() error  { return nil }

func (a *caAuthn) AddUser(user envtest.User, base *rest.Config) (*rest.Config, error) {
	pair, err := a.ca.LoadOrIssue(a.dir, "user-"+user.Name, pki.Spec{CommonName: user.Name, Organization: user.Groups, Client: true})
	if err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(base)
	cfg.CertData, cfg.KeyData = pair.CertPEM, pair.KeyPEM
	return cfg, nil
}
