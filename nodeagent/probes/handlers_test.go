package probes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
	"k8s.io/utils/clock"
	utilexec "k8s.io/utils/exec"
)

// The CRI runtime service is what the agent passes as Execer.
var _ Execer = internalapi.RuntimeService(nil)

// fakeExec answers ExecSync with fn and records the calls.
type fakeExec struct {
	mu    sync.Mutex
	calls []execCall
	fn    func(ctx context.Context, cmd []string, timeout time.Duration) ([]byte, []byte, error)
}

type execCall struct {
	id      string
	cmd     []string
	timeout time.Duration
}

func (f *fakeExec) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, error) {
	f.mu.Lock()
	f.calls = append(f.calls, execCall{id, cmd, timeout})
	fn := f.fn
	f.mu.Unlock()
	return fn(ctx, cmd, timeout)
}

func (f *fakeExec) count(cmd string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if len(c.cmd) > 0 && c.cmd[0] == cmd {
			n++
		}
	}
	return n
}

func exitErr(code int) error {
	return utilexec.CodeExitError{Err: fmt.Errorf("command exited with %d", code), Code: code}
}

func TestExecProbe(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fn      func(ctx context.Context, cmd []string, timeout time.Duration) ([]byte, []byte, error)
		want    outcome
		msg     string // the message must contain it
		wantErr bool
	}{
		{"exit 0", func(context.Context, []string, time.Duration) ([]byte, []byte, error) {
			return []byte("fine"), nil, nil
		}, success, "fine", false},
		{"exit 1 keeps stdout and stderr", func(context.Context, []string, time.Duration) ([]byte, []byte, error) {
			return []byte("out;"), []byte("err"), exitErr(1)
		}, failure, "out;err", false},
		{"runtime timeout", func(_ context.Context, cmd []string, timeout time.Duration) ([]byte, []byte, error) {
			return nil, nil, fmt.Errorf("%w: %q timed out after %s", remote.ErrCommandTimedOut, strings.Join(cmd, " "), timeout)
		}, failure, "command timed out", false},
		{"runtime ignoring the timeout", func(ctx context.Context, _ []string, _ time.Duration) ([]byte, []byte, error) {
			<-ctx.Done()
			return nil, nil, ctx.Err()
		}, failure, "timed out after 1s", false},
		{"runtime error", func(context.Context, []string, time.Duration) ([]byte, []byte, error) {
			return nil, nil, errors.New("container not found")
		}, failure, "", true},
		{"output capped", func(context.Context, []string, time.Duration) ([]byte, []byte, error) {
			return []byte(strings.Repeat("x", 3*maxOutput)), nil, exitErr(2)
		}, failure, strings.Repeat("x", maxOutput), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fe := &fakeExec{fn: tc.fn}
			m := newManager(fe, nil, nil, clock.RealClock{})
			// Give up on a runtime ignoring the timeout 10ms after asking.
			m.execGrace = 10*time.Millisecond - time.Second
			c := &corev1.Container{Name: "app", Env: []corev1.EnvVar{{Name: "GREETING", Value: "hi"}}}
			p := &corev1.Probe{TimeoutSeconds: 1, ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"echo", "$(GREETING)", "$$(GREETING)", "$(MISSING)"}}}}
			res, msg, err := m.runProbe(context.Background(), p, c, "containerd://abc", "")
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if res != tc.want || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %v %q, want %v containing %q", res, msg, tc.want, tc.msg)
			}
			if len(msg) > maxOutput {
				t.Errorf("message of %d bytes, want at most %d", len(msg), maxOutput)
			}
			call := fe.calls[0]
			if call.id != "abc" || call.timeout != time.Second || strings.Join(call.cmd, " ") != "echo hi $(GREETING) $(MISSING)" {
				t.Errorf("ExecSync(%q, %q, %s), want (abc, [echo hi $(GREETING) $(MISSING)], 1s)", call.id, call.cmd, call.timeout)
			}
		})
	}
}

func TestHTTPProbe(t *testing.T) {
	mux := http.NewServeMux()
	var elsewhere string
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("fine")) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "broken", http.StatusInternalServerError) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/redirect-fail", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/fail", http.StatusFound) })
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", elsewhere)
		w.WriteHeader(http.StatusFound)
		_, _ = w.Write([]byte("moved"))
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		if r.UserAgent() != "kube-probe/1.36" || r.Header.Get("Accept") != "*/*" || r.Header.Get("X-Custom") != "v" || r.Host != "example.test" || r.URL.RawQuery != "q=1" {
			http.Error(w, fmt.Sprintf("ua=%q accept=%q custom=%q host=%q query=%q", r.UserAgent(), r.Header.Get("Accept"), r.Header.Get("X-Custom"), r.Host, r.URL.RawQuery), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/own-agent", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Accept"]; ok || r.UserAgent() != "mine" {
			http.Error(w, "", http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(strings.Repeat("b", 3*maxOutput))) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	elsewhere = "http://localhost:" + u.Port() + "/ok" // another host name for the same server
	tu, _ := url.Parse(tlsSrv.URL)
	tlsPort, _ := strconv.Atoi(tu.Port())

	c := &corev1.Container{Name: "app", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(port)}, {Name: "secure", ContainerPort: int32(tlsPort)}}}
	get := func(path string, port intstr.IntOrString) *corev1.HTTPGetAction {
		return &corev1.HTTPGetAction{Path: path, Port: port}
	}
	byNum := intstr.FromInt32(int32(port))
	for _, tc := range []struct {
		name    string
		action  *corev1.HTTPGetAction
		want    outcome
		msg     string
		wantErr string
	}{
		{"200", get("/ok", byNum), success, "fine", ""},
		{"500", get("/fail", byNum), failure, "HTTP probe failed with statuscode: 500", ""},
		{"redirect on the same host is followed", get("/redirect", byNum), success, "fine", ""},
		{"redirect to a failure", get("/redirect-fail", byNum), failure, "HTTP probe failed with statuscode: 500", ""},
		{"redirect elsewhere passes with a warning", get("/elsewhere", byNum), warning, "Probe terminated redirects, Response body: moved", ""},
		{"headers, Host override, query", &corev1.HTTPGetAction{Path: "/headers?q=1", Port: byNum, HTTPHeaders: []corev1.HTTPHeader{{Name: "x-custom", Value: "v"}, {Name: "Host", Value: "example.test"}}}, success, "", ""},
		{"own User-Agent, empty Accept dropped", &corev1.HTTPGetAction{Path: "/own-agent", Port: byNum, HTTPHeaders: []corev1.HTTPHeader{{Name: "User-Agent", Value: "mine"}, {Name: "Accept", Value: ""}}}, success, "", ""},
		{"named port", get("/ok", intstr.FromString("web")), success, "fine", ""},
		{"port number as a string", get("/ok", intstr.FromString(u.Port())), success, "fine", ""},
		{"unknown named port", get("/ok", intstr.FromString("nope")), failure, "", `port "nope" not found in the ports of container app`},
		{"port 0", get("/ok", intstr.FromInt32(0)), failure, "", "invalid port number: 0"},
		{"https skips verification", &corev1.HTTPGetAction{Path: "/ok", Port: intstr.FromString("secure"), Scheme: corev1.URISchemeHTTPS}, success, "fine", ""},
		{"body capped", get("/big", byNum), success, strings.Repeat("b", maxOutput), ""},
		{"no pod IP", nil, failure, "", "the pod has no IP to probe"},
		{"refused", &corev1.HTTPGetAction{Path: "/ok", Port: intstr.FromInt32(int32(closedPort(t)))}, failure, "connection refused", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(nil, nil, nil, clock.RealClock{})
			podIP := "127.0.0.1"
			if tc.action == nil {
				tc.action, podIP = get("/ok", byNum), ""
			}
			p := &corev1.Probe{TimeoutSeconds: 5, ProbeHandler: corev1.ProbeHandler{HTTPGet: tc.action}}
			res, msg, err := m.runProbe(context.Background(), p, c, "id", podIP)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res != tc.want || !strings.Contains(msg, tc.msg) || len(msg) > maxOutput+100 {
				t.Errorf("got %v %.200q, want %v containing %.200q", res, msg, tc.want, tc.msg)
			}
		})
	}
}

// closedPort is a local port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	open := l.Addr().(*net.TCPAddr).Port
	c := &corev1.Container{Name: "app", Ports: []corev1.ContainerPort{{Name: "svc", ContainerPort: int32(open)}}}
	for _, tc := range []struct {
		name string
		host string
		port intstr.IntOrString
		want outcome
		msg  string
	}{
		{"listening", "", intstr.FromInt32(int32(open)), success, ""},
		{"named port, explicit host", "127.0.0.1", intstr.FromString("svc"), success, ""},
		{"closed", "", intstr.FromInt32(int32(closedPort(t))), failure, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(nil, nil, nil, clock.RealClock{})
			p := &corev1.Probe{TimeoutSeconds: 5, ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Host: tc.host, Port: tc.port}}}
			res, msg, err := m.runProbe(context.Background(), p, c, "id", "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			if res != tc.want || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %v %q, want %v containing %q", res, msg, tc.want, tc.msg)
			}
		})
	}
}

func TestGRPCProbe(t *testing.T) {
	serve := func(withHealth bool) int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		if withHealth {
			hs := health.NewServer()
			hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
			hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
			healthpb.RegisterHealthServer(s, hs)
		}
		go func() { _ = s.Serve(l) }()
		t.Cleanup(s.Stop)
		return l.Addr().(*net.TCPAddr).Port
	}
	healthy, bare, closed := serve(true), serve(false), closedPort(t)
	for _, tc := range []struct {
		name    string
		port    int
		service string
		want    outcome
		msg     string
	}{
		{"server health", healthy, "", success, "service healthy"},
		{"serving service", healthy, "up", success, "service healthy"},
		{"not serving", healthy, "down", failure, `service unhealthy (responded with "NOT_SERVING")`},
		{"unknown service", healthy, "what", failure, "error: health rpc probe failed"},
		{"no health service", bare, "", failure, "does not implement the grpc health protocol"},
		{"nothing listening", closed, "", failure, "error: failed to connect service at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(nil, nil, nil, clock.RealClock{})
			g := &corev1.GRPCAction{Port: int32(tc.port)}
			if tc.service != "" {
				g.Service = &tc.service
			}
			p := &corev1.Probe{TimeoutSeconds: 5, ProbeHandler: corev1.ProbeHandler{GRPC: g}}
			res, msg, err := m.runProbe(context.Background(), p, &corev1.Container{Name: "app"}, "id", "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			if res != tc.want || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %v %q, want %v containing %q", res, msg, tc.want, tc.msg)
			}
		})
	}
}
