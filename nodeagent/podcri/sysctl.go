package podcri

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// SysctlForbidden is the kubelet's reason for a pod refused for its Sysctls.
const SysctlForbidden = "SysctlForbidden"

// safeSysctls are namespaced and isolated (they affect no other pod), so
// every pod may set them: the kubelet's list (the last three need kernels
// from 3.16 and 4.15, older than anything this project runs on).
var safeSysctls = []string{
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.ping_group_range",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_rmem",
	"net.ipv4.tcp_wmem",
}

// SysctlAllowlist are the Sysctls a node lets pods set: the safe ones and
// --allowed-unsafe-Sysctls (names, or prefixes ending in *), each with the
// namespace it lives in ("net" or "ipc"), which a pod sharing the host's
// network or IPC namespace may not change.
type SysctlAllowlist struct {
	names, prefixes map[string]string
}

// NewSysctlAllowlist allows the safe Sysctls and unsafe, which must all be
// namespaced: a sysctl of the whole machine cannot be set for one pod.
func NewSysctlAllowlist(unsafe []string) (SysctlAllowlist, error) {
	a := SysctlAllowlist{names: map[string]string{}, prefixes: map[string]string{}}
	for _, s := range safeSysctls {
		a.names[s] = sysctlNamespace(s)
	}
	for _, s := range unsafe {
		s = normalizeSysctl(s)
		ns := sysctlNamespace(strings.TrimSuffix(s, "*"))
		if ns == "" {
			return SysctlAllowlist{}, fmt.Errorf("--allowed-unsafe-Sysctls: %q is not a namespaced sysctl (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)", s)
		}
		if p, ok := strings.CutSuffix(s, "*"); ok {
			a.prefixes[p] = ns
		} else {
			a.names[s] = ns
		}
	}
	return a, nil
}

// sysctlNamespace is the kernel namespace a sysctl (or a prefix of
// Sysctls) belongs to; "" for Sysctls of the whole machine.
func sysctlNamespace(s string) string {
	switch {
	case strings.HasPrefix(s, "net."):
		return "net"
	case s == "kernel.sem", strings.HasPrefix(s, "kernel.shm"), strings.HasPrefix(s, "kernel.msg"), strings.HasPrefix(s, "fs.mqueue."):
		return "ipc"
	}
	return ""
}

// normalizeSysctl accepts the slash form (net/ipv4/ip_forward, where a
// dot may be part of an interface name) and returns the dotted one.
func normalizeSysctl(s string) string {
	if !strings.Contains(s, "/") {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '.'
		case '.':
			return '/'
		}
		return r
	}, s)
}

// Rejection says why the pod may not set its Sysctls on this node, in the
// kubelet's words; "" admits it.
func (a SysctlAllowlist) Rejection(pod *corev1.Pod) string {
	if pod.Spec.SecurityContext == nil || len(pod.Spec.SecurityContext.Sysctls) == 0 {
		return ""
	}
	if a.names == nil { // the zero value: the safe Sysctls only
		a, _ = NewSysctlAllowlist(nil)
	}
	for _, s := range pod.Spec.SecurityContext.Sysctls {
		name := normalizeSysctl(s.Name)
		ns, ok := a.names[name]
		if !ok {
			for p, pns := range a.prefixes {
				if strings.HasPrefix(name, p) {
					ns, ok = pns, true
					break
				}
			}
		}
		switch {
		case !ok:
			return fmt.Sprintf("forbidden sysctl: %q not allowlisted", name)
		case ns == "net" && pod.Spec.HostNetwork, ns == "ipc" && pod.Spec.HostIPC:
			return fmt.Sprintf("forbidden sysctl: %q not allowed with host %s enabled", name, ns)
		}
	}
	return ""
}

// Sysctls are the pod's Sysctls for its sandbox.
func Sysctls(pod *corev1.Pod) map[string]string {
	if pod.Spec.SecurityContext == nil || len(pod.Spec.SecurityContext.Sysctls) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, s := range pod.Spec.SecurityContext.Sysctls {
		m[s.Name] = s.Value
	}
	return m
}
