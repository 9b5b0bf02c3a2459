package pods

import (
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Cgroup drivers: how the runtime names cgroups (--cgroup-driver, the
// KubeletConfiguration's cgroupDriver; containerd's SystemdCgroup must agree).
const (
	CgroupDriverCgroupfs = "cgroupfs"
	CgroupDriverSystemd  = "systemd"
)

// cgroupComponents is the pod's cgroup as a list of names, from the node's
// pods cgroup down: [kubepods burstable pod<uid>], as the kubelet's cgroup
// manager names them before either driver turns them into a cgroup.
func cgroupComponents(parent string, pod *corev1.Pod) []string {
	var c []string
	for _, p := range strings.Split(parent, "/") {
		if p != "" {
			c = append(c, p)
		}
	}
	switch qosClass(pod) {
	case corev1.PodQOSBurstable:
		c = append(c, "burstable")
	case corev1.PodQOSBestEffort:
		c = append(c, "besteffort")
	}
	return append(c, "pod"+string(pod.UID))
}

// systemdSlice is the systemd slice of a cgroup's components: each level is a
// slice named by the path so far, dashes within a name escaped as underscores
// (kubepods-burstable-pod1234_5678.slice); systemd creates the parents from
// the name.
func systemdSlice(components []string) string {
	escaped := make([]string, len(components))
	for i, c := range components {
		escaped[i] = strings.ReplaceAll(c, "-", "_")
	}
	return strings.Join(escaped, "-") + ".slice"
}

// systemdPath is where systemd puts that slice in the cgroup hierarchy:
// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice.
func systemdPath(components []string) string {
	p := "/"
	for i := range components {
		p = path.Join(p, systemdSlice(components[:i+1]))
	}
	return p
}

// podCgroup is the pod's cgroup under the node's pods cgroup: as the runtime
// is told it (the sandbox's CgroupParent: a path for cgroupfs, the leaf slice
// for systemd) and as a path of the cgroup hierarchy, where the agent writes
// the pod-level limits. Empty when the node leaves cgroups to the runtime.
func (n Node) podCgroup(pod *corev1.Pod) (forRuntime, fsPath string) {
	if n.CgroupParent == "" {
		return "", ""
	}
	c := cgroupComponents(n.CgroupParent, pod)
	if n.CgroupDriver == CgroupDriverSystemd {
		return systemdSlice(c), systemdPath(c)
	}
	p := path.Join(append([]string{"/"}, c...)...)
	if !strings.HasPrefix(n.CgroupParent, "/") {
		p = strings.TrimPrefix(p, "/")
	}
	return p, p
}

// qosCgroupPath is the cgroup hierarchy's path of a QoS class's cgroup
// (burstable, besteffort) on the node.
func (n Node) qosCgroupPath(class string) string {
	if n.CgroupDriver == CgroupDriverSystemd {
		var c []string
		for _, p := range strings.Split(n.CgroupParent, "/") {
			if p != "" {
				c = append(c, p)
			}
		}
		return systemdPath(append(c, class))
	}
	return path.Join(n.CgroupParent, class)
}
