package pods

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeparts/kubeparts/nodeagent/podcri"
)

// The kubelet's sysctl admission: safe sysctls for all, unsafe ones when
// allowed, none of a namespace the pod shares with the host.
func TestSysctlAdmission(t *testing.T) {
	allowed, err := podcri.NewSysctlAllowlist([]string{"net.core.somaxconn", "kernel.msg*"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		allowlist podcri.SysctlAllowlist
		sysctl    string
		spec      corev1.PodSpec
		want      string
	}{
		{name: "safe", sysctl: "net.ipv4.ip_local_port_range"},
		{name: "safe, slash form", sysctl: "net/ipv4/tcp_syncookies"},
		{name: "unsafe, not allowed", sysctl: "net.core.somaxconn", want: `forbidden sysctl: "net.core.somaxconn" not allowlisted`},
		{name: "unsafe, allowed by name", allowlist: allowed, sysctl: "net.core.somaxconn"},
		{name: "unsafe, allowed by prefix", allowlist: allowed, sysctl: "kernel.msgmax"},
		{name: "net with host network", sysctl: "net.ipv4.tcp_syncookies", spec: corev1.PodSpec{HostNetwork: true},
			want: `forbidden sysctl: "net.ipv4.tcp_syncookies" not allowed with host net enabled`},
		{name: "ipc with host IPC", allowlist: allowed, sysctl: "kernel.msgmax", spec: corev1.PodSpec{HostIPC: true},
			want: `forbidden sysctl: "kernel.msgmax" not allowed with host ipc enabled`},
		{name: "net with host IPC is fine", sysctl: "net.ipv4.tcp_syncookies", spec: corev1.PodSpec{HostIPC: true}},
	} {
		p := &corev1.Pod{Spec: tc.spec}
		p.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: tc.sysctl, Value: "1"}}}
		reason, msg := admission(Node{Sysctls: tc.allowlist}, p)
		if msg != tc.want || (msg != "" && reason != podcri.SysctlForbidden) {
			t.Errorf("%s: %s %q, want %q", tc.name, reason, msg, tc.want)
		}
	}
	if _, err := podcri.NewSysctlAllowlist([]string{"kernel.panic"}); err == nil {
		t.Error("a sysctl of the whole machine cannot be allowed for pods")
	}
	if reason, msg := admission(Node{}, &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}); reason != "" || msg != "" {
		t.Errorf("a pod without sysctls: %s %s", reason, msg)
	}
}
