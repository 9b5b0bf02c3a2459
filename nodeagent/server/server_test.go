package server

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// The kubelet's mapping of its paths onto node subresources, which RBAC
// rules written for the kubelet (system:kubelet-api-admin, metrics-server's
// nodes/metrics) rely on.
func TestAuthorizationAttributes(t *testing.T) {
	tests := []struct{ method, path, want string }{
		{"GET", "/stats/summary", "get nodes/stats"},
		{"GET", "/metrics", "get nodes/metrics"},
		{"GET", "/metrics/resource", "get nodes/metrics"},
		{"GET", "/logs/", "get nodes/log"},
		{"GET", "/healthz", "get nodes/healthz,proxy"},
		{"GET", "/pods", "get nodes/pods,proxy"},
		{"GET", "/containerLogs/ns/p/c", "get nodes/proxy"},
		{"POST", "/exec/ns/p/c", "create nodes/proxy"},
		{"GET", "/exec/ns/p/c", "get nodes/proxy"},
		{"POST", "/portForward/ns/p", "create nodes/proxy"},
		{"GET", "/metricsfoo", "get nodes/proxy"},
	}
	for _, tt := range tests {
		attrs := authorizationAttributes(httptest.NewRequest(tt.method, tt.path, nil))
		var subs []string
		for _, a := range attrs {
			subs = append(subs, a.subresource)
		}
		if got := attrs[0].verb + " nodes/" + strings.Join(subs, ","); got != tt.want {
			t.Errorf("%s %s: got %s, want %s", tt.method, tt.path, got, tt.want)
		}
	}
}
