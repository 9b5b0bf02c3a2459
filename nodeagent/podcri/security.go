package podcri

import (
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The pod's and its containers' securityContext, handed to the CRI as the
// kubelet hands it: the runtime (containerd, runc) enforces it, the agent
// only merges pod and container settings and checks runAsNonRoot, which
// needs the image's user.

// The /proc and /sys paths a container with the Default procMount cannot
// read (masked) or write (read-only). The kubelet sends its own lists rather
// than relying on the runtime's defaults, and so do we.
var (
	defaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// Security are a node's security defaults (the kubelet's flags of the same names).
type Security struct {
	// SeccompProfileRoot holds the Localhost seccomp profiles
	// (<root-dir>/seccomp); their localhostProfile is relative to it.
	SeccompProfileRoot string
	// SeccompDefault runs containers without a seccompProfile under the
	// runtime's default profile instead of Unconfined (--seccomp-default).
	SeccompDefault bool
}

// SandboxSecurity is the sandbox's security context: the pod's namespaces,
// user, groups and SELinux label, privileged when any container is (the
// runtime refuses a privileged container in an unprivileged sandbox), and the
// runtime's default seccomp profile for the pause process whatever the pod
// says, as the kubelet does.
func SandboxSecurity(pod *corev1.Pod) *runtimeapi.LinuxSandboxSecurityContext {
	sc := &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: Namespaces(pod),
		Privileged:       hasPrivileged(pod),
		Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
		}
		sc.SupplementalGroups = supplementalGroups(psc)
		sc.SupplementalGroupsPolicy = groupsPolicy(psc)
		sc.SelinuxOptions = selinuxOptions(psc.SELinuxOptions)
	}
	return sc
}

// hasPrivileged: any container of the pod, init and ephemeral ones included,
// asks to be privileged.
func hasPrivileged(pod *corev1.Pod) bool {
	privileged := func(sc *corev1.SecurityContext) bool {
		return sc != nil && sc.Privileged != nil && *sc.Privileged
	}
	for _, c := range pod.Spec.InitContainers {
		if privileged(c.SecurityContext) {
			return true
		}
	}
	for _, c := range pod.Spec.Containers {
		if privileged(c.SecurityContext) {
			return true
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if privileged(c.SecurityContext) {
			return true
		}
	}
	return false
}

// supplementalGroups: the fsGroup first (so the pod's volumes are writable to
// it), then the pod's supplementalGroups.
func supplementalGroups(psc *corev1.PodSecurityContext) []int64 {
	var groups []int64
	if psc.FSGroup != nil {
		groups = append(groups, *psc.FSGroup)
	}
	return append(groups, psc.SupplementalGroups...)
}

func groupsPolicy(psc *corev1.PodSecurityContext) runtimeapi.SupplementalGroupsPolicy {
	if psc.SupplementalGroupsPolicy != nil && *psc.SupplementalGroupsPolicy == corev1.SupplementalGroupsPolicyStrict {
		return runtimeapi.SupplementalGroupsPolicy_Strict
	}
	return runtimeapi.SupplementalGroupsPolicy_Merge
}

func selinuxOptions(o *corev1.SELinuxOptions) *runtimeapi.SELinuxOption {
	if o == nil {
		return nil
	}
	return &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}

// EffectiveSecurity merges the pod's securityContext into the container's:
// the container's own settings win; capabilities, privileged, read-only root,
// privilege escalation and procMount exist only on the container.
func EffectiveSecurity(pod *corev1.Pod, c *corev1.Container) corev1.SecurityContext {
	var sc corev1.SecurityContext
	if c.SecurityContext != nil {
		sc = *c.SecurityContext
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if sc.RunAsUser == nil {
			sc.RunAsUser = psc.RunAsUser
		}
		if sc.RunAsGroup == nil {
			sc.RunAsGroup = psc.RunAsGroup
		}
		if sc.RunAsNonRoot == nil {
			sc.RunAsNonRoot = psc.RunAsNonRoot
		}
		if sc.SELinuxOptions == nil {
			sc.SELinuxOptions = psc.SELinuxOptions
		}
		if sc.SeccompProfile == nil {
			sc.SeccompProfile = psc.SeccompProfile
		}
		if sc.AppArmorProfile == nil {
			sc.AppArmorProfile = psc.AppArmorProfile
		}
	}
	return sc
}

// VerifyRunAsNonRoot refuses to start a container that runAsNonRoot forbids,
// with the kubelet's messages (shown as CreateContainerConfigError): an
// explicit runAsUser 0, an image running as root, or an image user given by
// name, which cannot be checked.
func VerifyRunAsNonRoot(pod *corev1.Pod, c *corev1.Container, uid *int64, username string) error {
	sc := EffectiveSecurity(pod, c)
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		return nil
	}
	who := fmt.Sprintf("pod: %q, container: %s", PodRef(pod), c.Name)
	switch {
	case sc.RunAsUser != nil && *sc.RunAsUser == 0:
		return fmt.Errorf("container's runAsUser breaks non-root policy (%s)", who)
	case sc.RunAsUser != nil:
		return nil
	case uid != nil && *uid == 0:
		return fmt.Errorf("container has runAsNonRoot and image will run as root (%s)", who)
	case uid == nil && username != "":
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (%s)", username, who)
	}
	return nil
}

// ContainerSecurity is the container's CRI security context; uid and
// username are the image's user, used when neither pod nor container sets
// runAsUser. ns are the namespaces it joins (the sandbox's).
func ContainerSecurity(sec Security, pod *corev1.Pod, c *corev1.Container, uid *int64, username string, ns *runtimeapi.NamespaceOption) (*runtimeapi.LinuxContainerSecurityContext, error) {
	sc := EffectiveSecurity(pod, c)
	out := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions: ns,
		Privileged:       sc.Privileged != nil && *sc.Privileged,
		ReadonlyRootfs:   sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
		// no_new_privs only when escalation is explicitly forbidden (and
		// never for privileged containers, which validation enforces).
		NoNewPrivs:     sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
		SelinuxOptions: selinuxOptions(sc.SELinuxOptions),
	}
	if sc.Capabilities != nil {
		out.Capabilities = &runtimeapi.Capability{}
		for _, c := range sc.Capabilities.Add {
			out.Capabilities.AddCapabilities = append(out.Capabilities.AddCapabilities, string(c))
		}
		for _, c := range sc.Capabilities.Drop {
			out.Capabilities.DropCapabilities = append(out.Capabilities.DropCapabilities, string(c))
		}
	}
	switch {
	case sc.RunAsUser != nil:
		out.RunAsUser = &runtimeapi.Int64Value{Value: *sc.RunAsUser}
	case uid != nil:
		out.RunAsUser = &runtimeapi.Int64Value{Value: *uid}
	default:
		out.RunAsUsername = username
	}
	if sc.RunAsGroup != nil {
		out.RunAsGroup = &runtimeapi.Int64Value{Value: *sc.RunAsGroup}
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		out.SupplementalGroups = supplementalGroups(psc)
		out.SupplementalGroupsPolicy = groupsPolicy(psc)
	}
	if sc.ProcMount == nil || *sc.ProcMount != corev1.UnmaskedProcMount {
		out.MaskedPaths, out.ReadonlyPaths = defaultMaskedPaths, defaultReadonlyPaths
	}
	var err error
	if out.Seccomp, err = seccompProfile(sec, sc.SeccompProfile); err != nil {
		return nil, err
	}
	out.Apparmor = apparmorProfile(sc.AppArmorProfile)
	return out, nil
}

// seccompProfile maps a seccompProfile (the container's, else the pod's) to
// the CRI's; unset means Unconfined, or RuntimeDefault with --seccomp-default.
func seccompProfile(sec Security, p *corev1.SeccompProfile) (*runtimeapi.SecurityProfile, error) {
	if p == nil {
		if sec.SeccompDefault {
			return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
	}
	switch p.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
	case corev1.SeccompProfileTypeLocalhost:
		if p.LocalhostProfile == nil || *p.LocalhostProfile == "" {
			return nil, fmt.Errorf("localhostProfile must be set if seccompProfile type is Localhost")
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost,
			LocalhostRef: filepath.Join(sec.SeccompProfileRoot, *p.LocalhostProfile)}, nil
	}
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
}

// apparmorProfile maps an appArmorProfile; unset leaves the choice to the
// runtime, whose default is its default profile where AppArmor is enabled.
func apparmorProfile(p *corev1.AppArmorProfile) *runtimeapi.SecurityProfile {
	if p == nil {
		return nil
	}
	switch p.Type {
	case corev1.AppArmorProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	case corev1.AppArmorProfileTypeLocalhost:
		if p.LocalhostProfile != nil {
			return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: *p.LocalhostProfile}
		}
	}
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
}

func Namespaces(pod *corev1.Pod) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		ns.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	return ns
}
