package pods

import (
	"context"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kubeparts/kubeparts/nodeagent/podcri"
)

// etcHostsPath is the pod's managed /etc/hosts on the node.
func etcHostsPath(node Node, pod *corev1.Pod) string {
	return filepath.Join(node.PodDir, string(pod.UID), "etc-hosts")
}

// ensureEtcHosts writes the pod's /etc/hosts once its sandbox has its IPs;
// an existing file is kept (containers may have edited it), as the kubelet
// keeps it.
func ensureEtcHosts(ctx context.Context, node Node, pod *corev1.Pod, sandboxID string) error {
	path := etcHostsPath(node, pod)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	hostname, domain, err := podcri.HostnameAndDomain(pod, node.DNS.ClusterDomain)
	if err != nil {
		return err
	}
	var ips []string
	var nodeHosts []byte
	if pod.Spec.HostNetwork {
		if nodeHosts, err = os.ReadFile("/etc/hosts"); err != nil {
			return err
		}
	} else {
		st, err := node.Runtime.PodSandboxStatus(ctx, sandboxID, false)
		if err != nil {
			return err
		}
		if ip := st.GetStatus().GetNetwork().GetIp(); ip != "" {
			ips = append(ips, ip)
		}
		for _, ip := range st.GetStatus().GetNetwork().GetAdditionalIps() {
			ips = append(ips, ip.GetIp())
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, podcri.EtcHosts(pod, ips, hostname, domain, nodeHosts), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// etcHostsMount mounts the pod's /etc/hosts into c, unless c mounts
// something of its own there.
func etcHostsMount(node Node, pod *corev1.Pod, c *corev1.Container) *runtimeapi.Mount {
	if node.PodDir == "" {
		return nil
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/etc/hosts" {
			return nil
		}
	}
	return &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: etcHostsPath(node, pod)}
}
