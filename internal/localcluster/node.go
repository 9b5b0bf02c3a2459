package localcluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kubeparts/kubeparts/internal/ociimage"
)

const (
	cniBinDir = "/usr/lib/cni"
	// SandboxImage is the pause image the node's containerd uses for pod sandboxes; it is
	// built locally from bin/pause, no registry is needed.
	SandboxImage = "registry.k8s.io/pause:3.10"
	// BusyboxImage is a shell-and-tools image for examples and tests, built from the
	// Debian busybox-static binary (hack/install-deps.sh installs it) when present.
	BusyboxImage = "docker.io/library/busybox:1.35"
	busyboxPath  = "/bin/busybox"
	// NettoolImage serves and checks HTTP, TCP and UDP (hack/images/nettool).
	NettoolImage = "docker.io/kubeparts/nettool:dev"
)

func lookPath(name string) (string, error) { return exec.LookPath(name) }

func (n nodeSpec) containerdSocket() string { return filepath.Join(n.runDir, "containerd.sock") }

// writeContainerdConfig writes a config that keeps this containerd apart from any other
// on the machine (own root, state, socket, stream port, CNI dirs) and fits this VM:
// cgroupfs (no systemd), overlayfs, and no oom_score_adj below our own (no CAP_SYS_RESOURCE).
func (p *plan) writeContainerdConfig(n nodeSpec) (string, error) {
	dir := filepath.Join(n.dir, "containerd")
	netd := filepath.Join(n.dir, "cni", "net.d")
	// Outside net.d: containerd would load it as a network there.
	template := filepath.Join(n.dir, "cni", "pod-cidr.conflist.template")
	for _, d := range []string{dir, netd, n.runDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
oom_score = 0

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "%d"
  sandbox_image = %q
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    conf_template = %q
`, filepath.Join(dir, "root"), filepath.Join(n.runDir, "containerd"), n.containerdSocket(),
		filepath.Join(n.runDir, "containerd-ttrpc.sock"), filepath.Join(dir, "opt"),
		p.ports.Stream, SandboxImage, cniBinDir, netd, template)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		return "", err
	}
	// A bridge network with host-local addresses from this node's pod CIDR. With
	// node IPAM the range is the Node's spec.podCIDR: the node agent (or the
	// kubelet) hands it to containerd through the CRI's UpdateRuntimeConfig, and
	// containerd writes 10-containerd-net.conflist from the template, as kubenet
	// once did. Either way containerd picks the file up without a restart. What
	// a run before left in net.d goes: a data dir may have run the other way, or
	// its Node may get another range now, and containerd would load the first
	// file in name order.
	subnet, write := n.podCIDR, filepath.Join(netd, "10-kubeparts.conflist")
	if n.podCIDR == "" {
		subnet, write = "{{.PodCIDR}}", template
	}
	for _, f := range []string{"10-kubeparts.conflist", "10-containerd-net.conflist"} {
		if err := os.Remove(filepath.Join(netd, f)); err != nil && !os.IsNotExist(err) {
			return "", err
		}
	}
	conflist := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "kubeparts",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": %t,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, n.bridge, n.masquerade, subnet, filepath.Join(n.runDir, "cni-ipam"))
	if err := os.WriteFile(write, []byte(conflist), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// writeKubeletConfig writes the KubeletConfiguration DESIGN.md §5 found to work here.
// The stock kubelet runs only as node 0 (newPlan refuses workers with it).
func (p *plan) writeKubeletConfig(c *certs) (string, error) {
	n := p.nodes[0]
	dir := filepath.Join(n.dir, "kubelet")
	manifests := filepath.Join(n.dir, "manifests")
	for _, d := range []string{dir, manifests} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	// With node IPAM the kubelet learns its range from its Node, as any kubelet of
	// a cluster does; a podCIDR here would be handed to the runtime first.
	podCIDR := "# podCIDR: from the Node (node IPAM)"
	if n.podCIDR != "" {
		podCIDR = fmt.Sprintf("podCIDR: %q", n.podCIDR)
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
tlsCertFile: %q
tlsPrivateKeyFile: %q
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %q
authorization:
  mode: Webhook
containerRuntimeEndpoint: %q
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: true
cgroupRoot: %q
enforceNodeAllocatable: [pods]
failSwapOn: false
oomScoreAdj: 0
clusterDomain: %s
clusterDNS: [%q]
staticPodPath: %q
%s
serializeImagePulls: false
# The pause image is imported, never pulled; keep image GC and disk eviction from
# acting on a small development disk.
imageGCHighThresholdPercent: 100
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
`, p.ports.Kubelet, p.ports.KubeletHealthz, c.nodes[0].serving.CertFile, c.nodes[0].serving.KeyFile, c.ca.CertFile,
		"unix://"+n.containerdSocket(), n.cgroupRoot, clusterDomain, p.dnsIP().String(), manifests, podCIDR)
	path := filepath.Join(dir, "config.yaml")
	return path, os.WriteFile(path, []byte(config), 0o644)
}

func (p *plan) kubeletArgs(c *certs, config string) []string {
	n := p.nodes[0]
	args := []string{
		"--config=" + config,
		"--kubeconfig=" + c.nodes[0].kubeconfig,
		"--root-dir=" + filepath.Join(n.dir, "kubelet", "root"),
		"--hostname-override=" + n.name,
		"--node-ip=" + n.ip.String(),
	}
	if p.runKubeparts[RoleCloud] {
		args = append(args, "--cloud-provider=external")
	}
	return args
}

// nodeAgentArgs runs kubeparts-nodeagent as this node on this containerd,
// with the kubelet's identity and the machine's capacity.
func (p *plan) nodeAgentArgs(c *certs, n nodeSpec) []string {
	args := []string{
		"--kubeconfig=" + c.nodes[n.index].kubeconfig,
		"--hostname-override=" + n.name,
		"--node-ip=" + n.ip.String(),
		"--runtime=remote",
		"--container-runtime-endpoint=unix://" + n.containerdSocket(),
		"--cgroup-parent=" + path.Join(n.cgroupRoot, "kubepods"),
		"--pod-log-dir=" + filepath.Join(n.dir, "pods"),
		"--root-dir=" + filepath.Join(n.dir, "nodeagent"),
		"--pod-manifest-path=" + filepath.Join(n.dir, "manifests"),
		// As the kubelet's configuration: the cluster's domain and its DNS
		// Service (CoreDNS, which `up` runs as kubeadm does).
		"--cluster-domain=" + clusterDomain,
		"--cluster-dns=" + p.dnsIP().String(),
		// As the kubelet's configuration here: a small development disk is no pressure.
		"--eviction-hard=memory.available<100Mi,nodefs.available<1%",
		// The kubelet API with the kubelet's certificate and client CA, so
		// kube-apiserver reaches logs, exec and metrics as with the kubelet.
		fmt.Sprintf("--port=%d", p.ports.Kubelet),
		fmt.Sprintf("--healthz-port=%d", p.ports.KubeletHealthz),
		"--tls-cert-file=" + c.nodes[n.index].serving.CertFile,
		"--tls-private-key-file=" + c.nodes[n.index].serving.KeyFile,
		"--client-ca-file=" + c.ca.CertFile,
		fmt.Sprintf("--capacity=cpu=%d,memory=%d,pods=110", goruntime.NumCPU(), machineMemory()),
	}
	if p.runKubeparts[RoleCloud] {
		args = append(args, "--cloud-provider=external")
	}
	return append(args, p.NodeAgentArgs...)
}

// machineMemory is MemTotal from /proc/meminfo, in bytes (0 if unreadable).
func machineMemory() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// cgroupMounts lists the mount points of every cgroup hierarchy.
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		i := slices.Index(fields, "-")
		if i < 0 || i+1 >= len(fields) {
			continue
		}
		if fs := fields[i+1]; fs == "cgroup" || fs == "cgroup2" {
			out = append(out, fields[4])
		}
	}
	return out, s.Err()
}

// ensureCgroupRoot creates the node's cgroupRoot in every hierarchy; the kubelet expects
// it to exist everywhere. A new cpuset cgroup starts with no CPUs or memory nodes, so it
// inherits the root's. Workers' roots nest under node 0's, so one sweep finds them all.
func ensureCgroupRoot(n nodeSpec) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if err := os.MkdirAll(filepath.Join(m, n.cgroupRoot), 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", filepath.Join(m, n.cgroupRoot), err)
		}
		// Each level down to the root, parents first: a cpuset cgroup accepts CPUs only
		// when its parent has them.
		rel := ""
		for _, part := range strings.Split(strings.Trim(n.cgroupRoot, "/"), "/") {
			rel = path.Join(rel, part)
			dir := filepath.Join(m, rel)
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				parent, err := os.ReadFile(filepath.Join(m, f))
				if err != nil {
					continue // not the cpuset hierarchy
				}
				if cur, _ := os.ReadFile(filepath.Join(dir, f)); len(bytes.TrimSpace(cur)) == 0 {
					if err := os.WriteFile(filepath.Join(dir, f), parent, 0o644); err != nil {
						return fmt.Errorf("cgroup %s/%s: %w", dir, f, err)
					}
				}
			}
		}
	}
	return nil
}

// removeCgroupRoot removes the node's cgroups, deepest first; busy ones stay.
func (p *plan) removeCgroupRoot() {
	mounts, _ := cgroupMounts()
	for _, m := range mounts {
		root := filepath.Join(m, p.layout.CgroupRoot)
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
}

// imageArchive is an image written as an OCI archive, ready for `ctr images import`.
type imageArchive struct {
	name string
	data []byte
}

// localImages builds the pause image from bin/pause and the busybox image when the
// machine has busybox-static.
func (p *plan) localImages(ctx context.Context) ([]imageArchive, error) {
	bin, err := os.ReadFile(p.binaries["pause"])
	if err != nil {
		return nil, err
	}
	images := []ociimage.Image{{
		Name:       SandboxImage,
		Files:      []ociimage.File{{Path: "pause", Mode: 0o755, Data: bin}},
		Entrypoint: []string{"/pause"},
	}}
	if bb, err := busyboxImage(ctx); err == nil {
		images = append(images, bb)
	}
	// nettool: the network test tool (hack/images/nettool), for examples
	// and tests of Services; optional like busybox.
	if bin, err := os.ReadFile(filepath.Join(p.BinDir, "nettool")); err == nil {
		images = append(images, ociimage.Image{
			Name:       NettoolImage,
			Files:      []ociimage.File{{Path: "nettool", Mode: 0o755, Data: bin}},
			Entrypoint: []string{"/nettool"},
		})
	}
	dns, err := corednsImage(p.binaries["coredns"])
	if err != nil {
		return nil, fmt.Errorf("CoreDNS image: %w", err)
	}
	images = append(images, dns)
	var out []imageArchive
	for _, img := range images {
		var buf bytes.Buffer
		if err := ociimage.Write(&buf, img); err != nil {
			return nil, err
		}
		out = append(out, imageArchive{name: img.Name, data: buf.Bytes()})
	}
	return out, nil
}

// importImages loads the archives into the node's containerd.
func (p *plan) importImages(ctx context.Context, n nodeSpec, images []imageArchive) error {
	for _, img := range images {
		cmd := exec.CommandContext(ctx, p.binaries["ctr"], "--address", n.containerdSocket(), "--namespace", "k8s.io", "images", "import", "-")
		cmd.Stdin = bytes.NewReader(img.data)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("node %s: ctr images import %s: %v: %s", n.name, img.name, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// busyboxImage is /bin/busybox with a symbolic link per applet, as the
// upstream busybox image is laid out.
func busyboxImage(ctx context.Context) (ociimage.Image, error) {
	img := ociimage.Image{Name: BusyboxImage, Cmd: []string{"sh"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
	data, err := os.ReadFile(busyboxPath)
	if err != nil {
		return img, err
	}
	list, err := exec.CommandContext(ctx, busyboxPath, "--list-full").Output()
	if err != nil {
		return img, err
	}
	img.Files = append(img.Files, ociimage.File{Path: "bin/busybox", Mode: 0o755, Data: data})
	for _, applet := range strings.Fields(string(list)) {
		if applet != "bin/busybox" {
			img.Files = append(img.Files, ociimage.File{Path: applet, Link: "/bin/busybox"})
		}
	}
	img.Files = append(img.Files, ociimage.File{Path: "tmp/.keep", Mode: 0o644})
	return img, nil
}

// criClient connects to the node's containerd over CRI.
func (n nodeSpec) criClient() (runtimeapi.RuntimeServiceClient, func(), error) {
	conn, err := grpc.NewClient("unix://"+n.containerdSocket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return runtimeapi.NewRuntimeServiceClient(conn), func() { _ = conn.Close() }, nil
}

// runtimeReady asks containerd over CRI whether it is ready. Its pod network may
// come later (with node IPAM, once the Node has its range): the node agent
// reports that in the Node's Ready condition.
func (n nodeSpec) runtimeReady(ctx context.Context) (bool, error) {
	if _, err := os.Stat(n.containerdSocket()); err != nil {
		return false, nil
	}
	rt, closeFn, err := n.criClient()
	if err != nil {
		return false, err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return false, nil
	}
	for _, c := range st.GetStatus().GetConditions() {
		if c.Type == runtimeapi.RuntimeReady {
			return c.Status, nil
		}
	}
	return false, nil
}

// removePods stops and removes every pod sandbox (and with it its containers) so that no
// container outlives the cluster; the kubelet recreates them on the next start.
func (n nodeSpec) removePods(ctx context.Context) error {
	rt, closeFn, err := n.criClient()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	var errs []string
	for _, sb := range list.GetItems() {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("removing pods: %s", strings.Join(errs, "; "))
	}
	return nil
}

// removeBridge deletes the pod network's bridge and the host ends of any veth still
// enslaved to it (pods whose sandbox was never torn down, after a killed `up`); the CNI
// plugin creates the bridge again on the next start, and the pods' network
// namespaces no process uses any more. Absent is fine. Only node 0's
// bridge is on the host; the workers' go with their network namespaces.
func (n nodeSpec) removeBridge() {
	ip, err := exec.LookPath("ip")
	if err != nil {
		return
	}
	var pods []string
	for _, port := range ipLinks(ip, "", "master", n.bridge) {
		_ = exec.Command(ip, "link", "delete", port.name).Run()
		pods = append(pods, port.peerNetns)
	}
	defer removeUnusedNamespaces(ip, pods)
	_ = exec.Command(ip, "link", "delete", n.bridge).Run()
}
