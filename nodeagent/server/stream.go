package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/proxy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Exec, attach and port-forward are served by the runtime's own streaming
// server (containerd's, on loopback): the agent asks the CRI for a one-time
// URL and proxies the upgraded connection to it, as the kubelet does since
// it stopped redirecting clients. The SPDY or WebSocket protocol the client
// negotiated passes through untouched.

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
	// Ports come with the stream (one per forwarded port): the runtime's
	// server reads them from the client's headers.
	resp, err := s.cfg.Runtime.PortForward(r.Context(), &runtimeapi.PortForwardRequest{PodSandboxId: sb})
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
	// The runtime's URL carries its own one-time token in the path; the
	// client's query (command, ports, flags) is what the runtime expects too.
	target.RawQuery = r.URL.RawQuery
	h := proxy.NewUpgradeAwareHandler(target, nil, false, true, responder{r.Context()})
	h.ServeHTTP(w, r)
}

type responder struct{ ctx context.Context }

func (r responder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	klog.FromContext(r.ctx).Error(err, "Proxying a stream to the runtime")
	http.Error(w, err.Error(), http.StatusInternalServerError)
}
