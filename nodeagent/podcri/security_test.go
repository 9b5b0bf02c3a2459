package podcri

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

func securityPod(psc *corev1.PodSecurityContext, csc *corev1.SecurityContext) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"},
		Spec: corev1.PodSpec{SecurityContext: psc, Containers: []corev1.Container{{Name: "c", SecurityContext: csc}}}}
}

func TestSandboxSecurity(t *testing.T) {
	p := securityPod(&corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](3000), FSGroup: ptr.To[int64](2000),
		SupplementalGroups: []int64{4000}, SupplementalGroupsPolicy: ptr.To(corev1.SupplementalGroupsPolicyStrict)}, nil)
	p.Spec.InitContainers = []corev1.Container{{Name: "init", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}
	sc := SandboxSecurity(p)
	if sc.GetRunAsUser().GetValue() != 1000 || sc.GetRunAsGroup().GetValue() != 3000 || !slices.Equal(sc.SupplementalGroups, []int64{2000, 4000}) ||
		sc.SupplementalGroupsPolicy != runtimeapi.SupplementalGroupsPolicy_Strict {
		t.Errorf("user/groups %+v", sc)
	}
	if !sc.Privileged {
		t.Error("a privileged init container needs a privileged sandbox")
	}
	if sc.GetSeccomp().GetProfileType() != runtimeapi.SecurityProfile_RuntimeDefault {
		t.Errorf("the pause container runs under the runtime's default seccomp profile, got %v", sc.GetSeccomp())
	}
	if plain := SandboxSecurity(securityPod(nil, nil)); plain.Privileged || plain.RunAsUser != nil || plain.SupplementalGroups != nil {
		t.Errorf("no securityContext: %+v", plain)
	}
}

func TestContainerSecurity(t *testing.T) {
	root := "/var/lib/agent/seccomp"
	imageUID := ptr.To[int64](65534)
	for _, tc := range []struct {
		name     string
		psc      *corev1.PodSecurityContext
		csc      *corev1.SecurityContext
		sec      Security
		uid      *int64
		username string
		check    func(*runtimeapi.LinuxContainerSecurityContext) string
	}{
		{name: "the container's runAsUser wins over the pod's and the image's",
			psc: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](3000)},
			csc: &corev1.SecurityContext{RunAsUser: ptr.To[int64](2000)}, uid: imageUID,
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if sc.GetRunAsUser().GetValue() != 2000 || sc.GetRunAsGroup().GetValue() != 3000 {
					return "want user 2000 group 3000"
				}
				return ""
			}},
		{name: "the image's uid when nobody sets one", uid: imageUID,
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if sc.GetRunAsUser().GetValue() != 65534 || sc.RunAsUsername != "" {
					return "want the image's uid"
				}
				return ""
			}},
		{name: "the image's user name", username: "nobody",
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if sc.RunAsUser != nil || sc.RunAsUsername != "nobody" {
					return "want user name nobody"
				}
				return ""
			}},
		{name: "fsGroup and supplementalGroups on every container",
			psc: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](2000), SupplementalGroups: []int64{5, 6}},
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if !slices.Equal(sc.SupplementalGroups, []int64{2000, 5, 6}) {
					return "want groups 2000 5 6"
				}
				return ""
			}},
		{name: "capabilities, read-only root, no privilege escalation",
			csc: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}},
				ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false)},
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if !slices.Equal(sc.GetCapabilities().GetAddCapabilities(), []string{"NET_ADMIN"}) || !slices.Equal(sc.GetCapabilities().GetDropCapabilities(), []string{"ALL"}) ||
					!sc.ReadonlyRootfs || !sc.NoNewPrivs || sc.Privileged {
					return "want caps +NET_ADMIN -ALL, read-only root, no_new_privs"
				}
				return ""
			}},
		{name: "privilege escalation unset or allowed: no no_new_privs",
			csc: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(true)},
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if sc.NoNewPrivs {
					return "want no no_new_privs"
				}
				return ""
			}},
		{name: "privileged", csc: &corev1.SecurityContext{Privileged: ptr.To(true)},
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if !sc.Privileged {
					return "want privileged"
				}
				return ""
			}},
		{name: "Default procMount masks /proc paths",
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if !slices.Contains(sc.MaskedPaths, "/proc/kcore") || !slices.Contains(sc.ReadonlyPaths, "/proc/sys") {
					return "want /proc/kcore masked, /proc/sys read-only"
				}
				return ""
			}},
		{name: "Unmasked procMount masks nothing", csc: &corev1.SecurityContext{ProcMount: ptr.To(corev1.UnmaskedProcMount)},
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if len(sc.MaskedPaths)+len(sc.ReadonlyPaths) != 0 {
					return "want no masked or read-only paths"
				}
				return ""
			}},
		{name: "no seccompProfile: Unconfined",
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if sc.GetSeccomp().GetProfileType() != runtimeapi.SecurityProfile_Unconfined {
					return "want Unconfined"
				}
				return ""
			}},
		{name: "no seccompProfile with --seccomp-default: RuntimeDefault", sec: Security{SeccompDefault: true},
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if sc.GetSeccomp().GetProfileType() != runtimeapi.SecurityProfile_RuntimeDefault {
					return "want RuntimeDefault"
				}
				return ""
			}},
		{name: "the pod's Localhost profile, under the seccomp root", sec: Security{SeccompProfileRoot: root},
			psc: &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("audit.json")}},
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if sc.GetSeccomp().GetProfileType() != runtimeapi.SecurityProfile_Localhost || sc.GetSeccomp().GetLocalhostRef() != root+"/audit.json" {
					return "want Localhost " + root + "/audit.json"
				}
				return ""
			}},
		{name: "the container's profile wins over the pod's",
			psc: &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("audit.json")}},
			csc: &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}},
			check: func(sc *runtimeapi.LinuxContainerSecurityContext) string {
				if sc.GetSeccomp().GetProfileType() != runtimeapi.SecurityProfile_RuntimeDefault || sc.GetApparmor().GetProfileType() != runtimeapi.SecurityProfile_Unconfined {
					return "want seccomp RuntimeDefault, AppArmor Unconfined"
				}
				return ""
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}
			p := securityPod(tc.psc, tc.csc)
			sc, err := ContainerSecurity(tc.sec, p, &p.Spec.Containers[0], tc.uid, tc.username, ns)
			if err != nil {
				t.Fatal(err)
			}
			if sc.NamespaceOptions != ns {
				t.Error("the container must join the sandbox's namespaces")
			}
			if msg := tc.check(sc); msg != "" {
				t.Errorf("%s, got %+v", msg, sc)
			}
		})
	}
	p := securityPod(nil, &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost}})
	if _, err := ContainerSecurity(Security{}, p, &p.Spec.Containers[0], nil, "", nil); err == nil || !strings.Contains(err.Error(), "localhostProfile must be set") {
		t.Errorf("Localhost without a profile: %v", err)
	}
}

// The kubelet's runAsNonRoot checks, with its messages.
func TestVerifyRunAsNonRoot(t *testing.T) {
	root, user := ptr.To[int64](0), ptr.To[int64](1000)
	for _, tc := range []struct {
		name     string
		psc      *corev1.PodSecurityContext
		csc      *corev1.SecurityContext
		uid      *int64
		username string
		want     string // "" allowed
	}{
		{name: "not asked: root is fine", uid: root},
		{name: "runAsNonRoot false", csc: &corev1.SecurityContext{RunAsNonRoot: ptr.To(false)}, uid: root},
		{name: "image runs as root", csc: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true)}, uid: root,
			want: `container has runAsNonRoot and image will run as root (pod: "p_ns(u1)", container: c)`},
		{name: "the pod asks, image runs as root", psc: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}, uid: root,
			want: `container has runAsNonRoot and image will run as root (pod: "p_ns(u1)", container: c)`},
		{name: "image runs as a uid", csc: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true)}, uid: user},
		{name: "runAsUser 0", csc: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: root}, uid: user,
			want: `container's runAsUser breaks non-root policy (pod: "p_ns(u1)", container: c)`},
		{name: "runAsUser overrides a root image", psc: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: user}, uid: root},
		{name: "image user by name", csc: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true)}, username: "nobody",
			want: `container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root (pod: "p_ns(u1)", container: c)`},
		{name: "the container's false wins over the pod's true", psc: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)},
			csc: &corev1.SecurityContext{RunAsNonRoot: ptr.To(false)}, uid: root},
	} {
		p := securityPod(tc.psc, tc.csc)
		err := VerifyRunAsNonRoot(p, &p.Spec.Containers[0], tc.uid, tc.username)
		if got := errString(err); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// The kubelet's namespaces: the pod's network and IPC, a process namespace
// per container unless shared, the host's when asked.
func TestNamespaces(t *testing.T) {
	pod, node, ctr := runtimeapi.NamespaceMode_POD, runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_CONTAINER
	for _, tc := range []struct {
		name          string
		spec          corev1.PodSpec
		net, pid, ipc runtimeapi.NamespaceMode
	}{
		{"defaults", corev1.PodSpec{}, pod, ctr, pod},
		{"hostNetwork", corev1.PodSpec{HostNetwork: true}, node, ctr, pod},
		{"hostPID", corev1.PodSpec{HostPID: true}, pod, node, pod},
		{"hostIPC", corev1.PodSpec{HostIPC: true}, pod, ctr, node},
		{"shareProcessNamespace", corev1.PodSpec{ShareProcessNamespace: ptr.To(true)}, pod, pod, pod},
		{"hostPID wins over sharing", corev1.PodSpec{HostPID: true, ShareProcessNamespace: ptr.To(true)}, pod, node, pod},
	} {
		ns := Namespaces(&corev1.Pod{Spec: tc.spec})
		if ns.Network != tc.net || ns.Pid != tc.pid || ns.Ipc != tc.ipc {
			t.Errorf("%s: network %v pid %v ipc %v, want %v %v %v", tc.name, ns.Network, ns.Pid, ns.Ipc, tc.net, tc.pid, tc.ipc)
		}
	}
}
