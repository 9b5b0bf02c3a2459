package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Exec, attach and port-forward are served by the runtime's own streaming
// server (containerd's, on loopback): the agent asks the CRI for a one-time
// URL and proxies the upgraded connection to it, as the kubelet does since
// it stopped redirecting clients. The SPDY or WebSocket protocol the client
// negotiated passes through untouched.
//
// The proxy is the standard library's, which relays a 101 Switching
// Protocols as the kubelet's (apimachinery's UpgradeAwareHandler) does;
// that one also rewrites HTML for other uses and so links an HTML parser
// whose tables alone take half a megabyte of every agent's heap.

func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := &runtimeapi.ExecRequest{Cmd: q[corev1.ExecCommandParam]}
	if err := s.streamOptions(q, &req.Stdin, &req.Stdout, &req.Stderr, &req.Tty); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(req.Cmd) == 0 {
		http.Error(w, "you must specify at least one command for the container", http.StatusBadRequest)
		return
	}
	s.stream(w, r, func(ctx context.Context, id string) (string, error) {
		req.ContainerId = id
		resp, err := s.cfg.Runtime.Exec(ctx, req)
		return resp.GetUrl(), err
	})
}

func (s *Server) serveAttach(w http.ResponseWriter, r *http.Request) {
	req := &runtimeapi.AttachRequest{}
	if err := s.streamOptions(r.URL.Query(), &req.Stdin, &req.Stdout, &req.Stderr, &req.Tty); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.stream(w, r, func(ctx context.Context, id string) (string, error) {
		req.ContainerId = id
		resp, err := s.cfg.Runtime.Attach(ctx, req)
		return resp.GetUrl(), err
	})
}

// streamOptions reads the kubelet's stream flags (input, output, error, tty:
// "1" or "true"); a TTY merges stderr into stdout.
func (s *Server) streamOptions(q url.Values, stdin, stdout, stderr, tty *bool) error {
	flag := func(name string) bool { v, _ := strconv.ParseBool(q.Get(name)); return v }
	*stdin, *stdout, *stderr, *tty = flag(corev1.ExecStdinParam), flag(corev1.ExecStdoutParam), flag(corev1.ExecStderrParam), flag(corev1.ExecTTYParam)
	if *tty {
		*stderr = false
	}
	if !*stdin && !*stdout && !*stderr {
		return fmt.Errorf("you must specify at least 1 of stdin, stdout, stderr")
	}
	return nil
}

// stream resolves the running container, asks the runtime for a streaming
// URL and proxies the request there.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, streamURL func(context.Context, string) (string, error)) {
	pod, ok := s.pod(w, r.PathValue("namespace"), r.PathValue("pod"))
	if !ok {
		return
	}
	name := r.PathValue("container")
	c, err := s.container(r.Context(), pod, name, false)
	if err != nil {
		writeError(w, err)
		return
	}
	if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		http.Error(w, fmt.Sprintf("container %s is not running (state %s)", name, c.State), http.StatusBadRequest)
		return
	}
	raw, err := streamURL(r.Context(), c.Id)
	if err != nil {
		writeError(w, err)
		return
	}
	s.proxy(w, r, raw)
}

func (s *Server) servePortForward(w http.ResponseWriter, r *http.Request) {
	pod, ok := s.pod(w, r.PathValue("namespace"), r.PathValue("pod"))
	if !ok {
		return
	}
	sb, err := s.sandbox(r.Context(), pod)
	if err != nil {
		writeError(w, err)
		return
	}
	// Over SPDY the ports come with the streams (one per forwarded port,
	// in their headers). Over a WebSocket they are the request's "port"
	// parameters, which the runtime's server takes from the CRI request.
	ports, err := webSocketPorts(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := s.cfg.Runtime.PortForward(r.Context(), &runtimeapi.PortForwardRequest{PodSandboxId: sb, Port: ports})
	if err != nil {
		writeError(w, err)
		return
	}
	s.proxy(w, r, resp.GetUrl())
}

// sandbox is the ID of the pod's ready sandbox.
func (s *Server) sandbox(ctx context.Context, pod *corev1.Pod) (string, error) {
	list, err := s.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{labelUID: string(pod.UID)},
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
	if err != nil {
		return "", err
	}
	if len(list) == 0 {
		return "", &httpError{http.StatusBadRequest, fmt.Sprintf("pod %s/%s has no running sandbox", pod.Namespace, pod.Name)}
	}
	return list[0].Id, nil
}

func (s *Server) proxy(w http.ResponseWriter, r *http.Request, raw string) {
	target, err := url.Parse(raw)
	if err != nil {
		writeError(w, fmt.Errorf("runtime streaming URL %q: %w", raw, err))
		return
	}
	if !isUpgrade(r) {
		http.Error(w, "Upgrade request required", http.StatusBadRequest)
		return
	}
	rp := &httputil.ReverseProxy{
		// The runtime's URL carries its own one-time token in the path; the
		// client's query (command, ports, flags) is what the runtime expects too.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = &url.URL{Scheme: target.Scheme, Host: target.Host, Path: target.Path, RawPath: target.RawPath, RawQuery: r.URL.RawQuery}
			pr.Out.Host = target.Host
		},
		Transport: streamTransport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			klog.FromContext(r.Context()).Error(err, "Proxying a stream to the runtime")
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}

// streamTransport reaches the runtime's streaming server directly, never
// through an HTTP proxy from the environment.
var streamTransport = &http.Transport{Proxy: nil, ForceAttemptHTTP2: false}

// isUpgrade: exec, attach and port-forward are SPDY or WebSocket upgrades.
func isUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Connection") {
		for _, token := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return r.Header.Get("Upgrade") != ""
			}
		}
	}
	return false
}

// webSocketPorts are the ports a WebSocket port-forward asks for (the
// kubelet's V4 options: "port" parameters, at least one, each in 1..65535);
// none for other requests.
func webSocketPorts(r *http.Request) ([]int32, error) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return nil, nil
	}
	values := r.URL.Query()["port"]
	if len(values) == 0 {
		return nil, fmt.Errorf("query parameter %q is required", "port")
	}
	var ports []int32
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil || n == 0 {
				return nil, fmt.Errorf("unable to parse %q as a port: %v", p, err)
			}
			ports = append(ports, int32(n))
		}
	}
	return ports, nil
}
