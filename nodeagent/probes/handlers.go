package probes

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/component-base/version"
	remote "k8s.io/cri-client/pkg"
	utilexec "k8s.io/utils/exec"

	"github.com/kubeparts/kubeparts/nodeagent/fieldpath"
)

// outcome is what one probe attempt found.
type outcome int

const (
	success outcome = iota
	warning         // success, worth an event (a redirect not followed)
	failure
)

// maxOutput caps how much of a command's output or a response body is kept
// for the event message.
const maxOutput = 10 << 10

// errNoHost keeps a probe of a pod without an IP yet from dialing the
// agent's own host.
var errNoHost = errors.New("the pod has no IP to probe")

// runProbe carries out one attempt of probe p against container c. An error
// means the probe could not be carried out at all (bad port, runtime error),
// which is not a failure of the container.
func (m *Manager) runProbe(ctx context.Context, p *corev1.Probe, c *corev1.Container, containerID, podIP string) (outcome, string, error) {
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	switch {
	case p.Exec != nil:
		return m.execProbe(ctx, containerID, expandCommand(p.Exec.Command, c.Env), timeout)
	case p.HTTPGet != nil:
		req, err := newHTTPRequest(ctx, p.HTTPGet, c, podIP)
		if err != nil {
			return failure, "", err
		}
		return m.http.probe(req, timeout)
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return failure, "", err
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		if host == "" {
			return failure, "", errNoHost
		}
		return tcpProbe(ctx, net.JoinHostPort(host, strconv.Itoa(port)), timeout)
	case p.GRPC != nil:
		if podIP == "" {
			return failure, "", errNoHost
		}
		service := ""
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		return grpcProbe(ctx, net.JoinHostPort(podIP, strconv.Itoa(int(p.GRPC.Port))), service, timeout)
	}
	return failure, "", fmt.Errorf("probe of container %s has no handler", c.Name)
}

// execProbe runs cmd in the container: exit code 0 passes, any other fails
// with the command's output, and so does a command that timed out.
func (m *Manager) execProbe(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (outcome, string, error) {
	if i := strings.Index(containerID, "://"); i >= 0 {
		containerID = containerID[i+3:]
	}
	ectx, cancel := context.WithTimeout(ctx, timeout+m.execGrace)
	defer cancel()
	stdout, stderr, err := m.exec.ExecSync(ectx, containerID, cmd, timeout)
	out := make([]byte, 0, len(stdout)+len(stderr))
	out = append(append(out, stdout...), stderr...)
	if len(out) > maxOutput {
		out = out[:maxOutput]
	}
	if err == nil {
		return success, string(out), nil
	}
	var exit utilexec.ExitError
	if errors.As(err, &exit) {
		if exit.ExitStatus() == 0 {
			return success, string(out), nil
		}
		return failure, string(out), nil
	}
	if errors.Is(err, remote.ErrCommandTimedOut) {
		return failure, err.Error(), nil
	}
	if ctx.Err() == nil && ectx.Err() != nil {
		// The runtime did not enforce the timeout; we did.
		return failure, fmt.Sprintf("command %q timed out after %s", strings.Join(cmd, " "), timeout), nil
	}
	return failure, "", err
}

// expandCommand substitutes $(VAR) references to the container's env
// values ($$ escapes one $; unknown references stay as written). Only the
// literal values count, as with the kubelet: valueFrom variables expand to
// the empty string.
func expandCommand(cmd []string, env []corev1.EnvVar) []string {
	vars := make(map[string]string, len(env))
	for _, e := range env {
		vars[e.Name] = e.Value
	}
	out := make([]string, len(cmd))
	for i, arg := range cmd {
		out[i] = fieldpath.Expand(arg, vars)
	}
	return out
}

// resolvePort turns a probe's port into a number: a number, the name of one
// of the container's ports, or a number written as a string.
func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	port := 0
	switch p.Type {
	case intstr.Int:
		port = p.IntValue()
	case intstr.String:
		found := false
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				port, found = int(cp.ContainerPort), true
				break
			}
		}
		if !found {
			n, err := strconv.Atoi(p.StrVal)
			if err != nil {
				return 0, fmt.Errorf("port %q not found in the ports of container %s", p.StrVal, c.Name)
			}
			port = n
		}
	default:
		return 0, fmt.Errorf("invalid port %v", p)
	}
	if port <= 0 || port > 65535 {
		return 0, fmt.Errorf("invalid port number: %d", port)
	}
	return port, nil
}

// userAgent is what probes introduce themselves as, kube-probe/<major>.<minor>
// as stock, so that applications treating probes specially keep doing so.
func userAgent() string {
	v := version.Get()
	if v.Major == "" || v.Minor == "" {
		return "kube-probe/1.36" // a build without version stamping
	}
	return fmt.Sprintf("kube-probe/%s.%s", v.Major, strings.TrimSuffix(v.Minor, "+"))
}

// newHTTPRequest builds the GET an httpGet probe sends.
func newHTTPRequest(ctx context.Context, a *corev1.HTTPGetAction, c *corev1.Container, podIP string) (*http.Request, error) {
	scheme := strings.ToLower(string(a.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := a.Host
	if host == "" {
		host = podIP
	}
	if host == "" {
		return nil, errNoHost
	}
	port, err := resolvePort(a.Port, c)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(a.Path)
	if err != nil {
		u = &url.URL{Path: a.Path}
	}
	u.Scheme, u.Host = scheme, net.JoinHostPort(host, strconv.Itoa(port))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for _, hh := range a.HTTPHeaders {
		h.Add(hh.Name, hh.Value)
	}
	if _, ok := h["User-Agent"]; !ok {
		h.Set("User-Agent", userAgent())
	}
	if _, ok := h["Accept"]; !ok {
		h.Set("Accept", "*/*")
	} else if h.Get("Accept") == "" {
		h.Del("Accept") // an empty Accept asks for none at all
	}
	req.Header = h
	req.Host = h.Get("Host")
	return req, nil
}

// httpProber shares one transport between all HTTP probes; keep-alives are
// off, as stock, so that probes do not hold connections open in the pods.
type httpProber struct {
	transport *http.Transport
}

func newHTTPProber() *httpProber {
	return &httpProber{transport: &http.Transport{
		// Probed endpoints serve certificates nobody can verify.
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the kubelet
		DisableKeepAlives:  true,
		DisableCompression: true,
		Proxy:              nil, // pod IPs are reached directly, whatever the environment says
		DialContext:        probeDialer().DialContext,
		ForceAttemptHTTP2:  true,
	}}
}

// probe sends req: a 2xx or 3xx status passes, anything else fails.
// Redirects are followed within the same host only; a redirect elsewhere
// passes with a warning, as stock.
func (p *httpProber) probe(req *http.Request, timeout time.Duration) (outcome, string, error) {
	client := &http.Client{Timeout: timeout, Transport: p.transport, CheckRedirect: sameHostRedirects}
	res, err := client.Do(req)
	if err != nil {
		return failure, err.Error(), nil
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxOutput))
	if err != nil {
		return failure, "", err
	}
	switch {
	case res.StatusCode >= http.StatusOK && res.StatusCode < http.StatusMultipleChoices:
		return success, string(body), nil
	case res.StatusCode >= http.StatusMultipleChoices && res.StatusCode < http.StatusBadRequest:
		return warning, fmt.Sprintf("Probe terminated redirects, Response body: %s", body), nil
	}
	return failure, fmt.Sprintf("HTTP probe failed with statuscode: %d", res.StatusCode), nil
}

func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// tcpProbe passes when a connection to addr opens within the timeout.
func tcpProbe(ctx context.Context, addr string, timeout time.Duration) (outcome, string, error) {
	d := probeDialer()
	d.Timeout = timeout
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return failure, err.Error(), nil
	}
	_ = conn.Close()
	return success, "", nil
}

// grpcProbe asks the standard health service at addr (plaintext, as stock)
// about service; only SERVING passes.
func grpcProbe(ctx context.Context, addr, service string, timeout time.Duration) (outcome, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent(userAgent()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return probeDialer().DialContext(ctx, "tcp", a)
		}))
	if err != nil {
		return failure, fmt.Sprintf("error: failed to connect service at %q: %v", addr, err), nil
	}
	defer func() { _ = conn.Close() }()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		st, _ := status.FromError(err)
		switch st.Code() {
		case codes.Unimplemented:
			return failure, fmt.Sprintf("error: this server does not implement the grpc health protocol (grpc.health.v1.Health): %s", st.Message()), nil
		case codes.DeadlineExceeded:
			return failure, fmt.Sprintf("timeout: health rpc did not complete within %v", timeout), nil
		case codes.Unavailable:
			return failure, fmt.Sprintf("error: failed to connect service at %q: %s", addr, st.Message()), nil
		}
		return failure, fmt.Sprintf("error: health rpc probe failed: %v", err), nil
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return failure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus().String()), nil
	}
	return success, "service healthy", nil
}
