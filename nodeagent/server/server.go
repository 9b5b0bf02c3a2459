// Package server is the node agent's HTTPS server on the kubelet port: what
// kube-apiserver, metrics-server and kubectl reach through "nodes/proxy" and
// the pod log, exec, attach and port-forward subresources. It authenticates
// and authorizes every request as the kubelet does (client certificates,
// bearer tokens through TokenReview, SubjectAccessReview on the node's
// subresources), so the RBAC rules written for the kubelet apply unchanged.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	certutil "k8s.io/client-go/util/cert"
	internalapi "k8s.io/cri-api/pkg/apis"
	"k8s.io/klog/v2"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
)

// Config is what the server needs to know about its node.
type Config struct {
	NodeName string
	// NodeIP goes into a self-signed certificate's SANs.
	NodeIP string
	// Address and Port to listen on (the kubelet's --address and --port).
	Address string
	Port    int
	// TLS serving certificate: its SANs must carry the node's addresses,
	// since kube-apiserver verifies them when --kubelet-certificate-authority is set.
	CertFile, KeyFile string
	// ServingCertificate, when set, is asked for the certificate at each
	// handshake (one the cluster signs and the agent renews:
	// serverTLSBootstrap); nil until one is issued, and then handshakes fail
	// as the kubelet's do.
	ServingCertificate func() *tls.Certificate
	// ClientCAFile verifies client certificates (kube-apiserver's kubelet
	// client certificate); empty accepts bearer tokens only.
	ClientCAFile string
	// Anonymous lets unauthenticated requests through as system:anonymous
	// (then subject to authorization); the kubelet's --anonymous-auth.
	Anonymous bool
	// AlwaysAllow skips SubjectAccessReview (the kubelet's
	// --authorization-mode=AlwaysAllow); for tests and trusted networks only.
	AlwaysAllow bool

	Client  kubeclient.Interface
	Runtime internalapi.RuntimeService
	Pods    corelisters.PodLister
	// Metrics is the registry /metrics serves (the agent's own metrics).
	Metrics *prometheus.Registry
}

// Server serves the kubelet API of one node.
type Server struct {
	cfg   Config
	auth  *auth
	mux   *http.ServeMux
	stats *statsProvider
}

// New builds the server; Listen and Serve run it.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, mux: http.NewServeMux(), stats: newStatsProvider(cfg.NodeName, cfg.Runtime, cfg.Pods)}
	var err error
	if s.auth, err = newAuth(cfg.Client, cfg.NodeName, cfg.ClientCAFile, cfg.Anonymous, cfg.AlwaysAllow); err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
		cfg.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		s.cfg.Metrics = cfg.Metrics
	}
	resource := prometheus.NewRegistry()
	resource.MustRegister(s.stats)

	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	s.mux.HandleFunc("GET /pods", s.servePods)
	s.mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.serveLogs)
	for _, verb := range []string{"GET", "POST"} {
		s.mux.HandleFunc(verb+" /exec/{namespace}/{pod}/{container}", s.serveExec)
		s.mux.HandleFunc(verb+" /attach/{namespace}/{pod}/{container}", s.serveAttach)
		s.mux.HandleFunc(verb+" /portForward/{namespace}/{pod}", s.servePortForward)
	}
	// Uncompressed: the pages are a few kilobytes, and a gzip writer per
	// scrape costs a megabyte of heap.
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{DisableCompression: true}))
	s.mux.Handle("GET /metrics/resource", promhttp.HandlerFor(resource, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, DisableCompression: true}))
	s.mux.HandleFunc("GET /stats/summary", s.serveSummary)
	return s, nil
}

// Handler is the server's handler with authentication and authorization in front.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger := klog.FromContext(r.Context())
		u, err := s.auth.authenticate(r)
		if err != nil {
			if !errors.Is(err, errUnauthenticated) {
				logger.Error(err, "Unable to authenticate the request")
			}
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		checks := authorizationAttributes(r)
		for _, attrs := range checks {
			allowed, err := s.auth.authorize(r.Context(), u, attrs)
			if err != nil {
				logger.Error(err, "Authorization error", "user", u.name, "verb", attrs.verb, "subresource", attrs.subresource)
				http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=nodes, subresource=%s)", u.name, attrs.verb, attrs.subresource), http.StatusInternalServerError)
				return
			}
			if allowed {
				s.mux.ServeHTTP(w, r)
				return
			}
		}
		last := checks[len(checks)-1]
		logger.V(2).Info("Forbidden", "user", u.name, "verb", last.verb, "subresource", last.subresource)
		http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource=%s)", u.name, last.verb, last.subresource), http.StatusForbidden)
	})
}

// authorizationAttributes are the checks a request must pass, in order, the
// first allowed one winning: the kubelet maps its paths onto subresources
// of the node (stats, metrics, log; everything else is proxy), and with
// fine-grained authorization also tries healthz/pods before falling back
// to proxy, so narrow grants keep working.
func authorizationAttributes(r *http.Request) []attributes {
	verb := map[string]string{http.MethodGet: "get", http.MethodHead: "get", http.MethodPost: "create", http.MethodPut: "update", http.MethodPatch: "patch", http.MethodDelete: "delete"}[r.Method]
	if verb == "" {
		verb = strings.ToLower(r.Method)
	}
	p := r.URL.Path
	under := func(prefix string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }
	switch {
	case under("/stats"):
		return []attributes{{verb, "stats"}}
	case under("/metrics"):
		return []attributes{{verb, "metrics"}}
	case under("/logs"):
		return []attributes{{verb, "log"}}
	case under("/healthz"):
		return []attributes{{verb, "healthz"}, {verb, "proxy"}}
	case under("/pods"):
		return []attributes{{verb, "pods"}, {verb, "proxy"}}
	}
	return []attributes{{verb, "proxy"}}
}

// Listen binds the port, so a port in use fails start-up as it does for the
// kubelet; Serve then answers on it until ctx ends.
func (s *Server) Listen() (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort(s.cfg.Address, fmt.Sprint(s.cfg.Port)))
}

// Serve answers on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Client certificates are verified by the authenticator against the
	// dynamic CA, so the TLS layer only asks for them.
	// HTTP/2 as the kubelet serves it (logs, stats, metrics); exec,
	// attach and port-forward upgrade an HTTP/1.1 connection, which the
	// clients that upgrade ask for alone. Over HTTP/2 a log's last data
	// and its end arrive apart: kube-apiserver's websocket log reader drops
	// the data of a read that also returns EOF, as HTTP/1.1's chunked
	// reader returns them when both are buffered.
	tlsConfig := &tls.Config{ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"}}
	if get := s.cfg.ServingCertificate; get != nil {
		tlsConfig.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := get(); c != nil {
				return c, nil
			}
			return nil, errors.New("no serving certificate yet: its CertificateSigningRequest (signer kubernetes.io/kubelet-serving) awaits approval")
		}
	} else {
		cert, err := s.servingCertificate()
		if err != nil {
			ln.Close()
			return fmt.Errorf("serving certificate: %w", err)
		}
		tlsConfig.Certificates = []tls.Certificate{cert}
	}
	srv := &http.Server{Handler: s.Handler(), TLSConfig: tlsConfig, ReadHeaderTimeout: 30 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	klog.FromContext(ctx).Info("Serving the kubelet API", "address", ln.Addr().String())
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// servingCertificate is the configured one or, as the kubelet does without
// --tls-cert-file, a self-signed one for the node's name and IP.
func (s *Server) servingCertificate() (tls.Certificate, error) {
	if s.cfg.CertFile != "" {
		return tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
	}
	var ips []net.IP
	if ip := net.ParseIP(s.cfg.NodeIP); ip != nil {
		ips = append(ips, ip)
	}
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey(s.cfg.NodeName, ips, nil)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// pod finds a pod of this node by namespace and name.
func (s *Server) pod(w http.ResponseWriter, namespace, name string) (*corev1.Pod, bool) {
	pod, err := s.cfg.Pods.Pods(namespace).Get(name)
	if err != nil || pod.Spec.NodeName != s.cfg.NodeName {
		http.Error(w, fmt.Sprintf("pod %s/%s not found", namespace, name), http.StatusNotFound)
		return nil, false
	}
	return pod, true
}
