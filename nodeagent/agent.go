package nodeagent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/version"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/kubeparts/kubeparts/nodeagent/certificate"
	"github.com/kubeparts/kubeparts/nodeagent/events"
	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
	"github.com/kubeparts/kubeparts/nodeagent/node"
	"github.com/kubeparts/kubeparts/nodeagent/podcri"
	"github.com/kubeparts/kubeparts/nodeagent/pods"
	"github.com/kubeparts/kubeparts/nodeagent/runtime"
	"github.com/kubeparts/kubeparts/nodeagent/server"
)

// Options are kubeparts-nodeagent's flags, named as the kubelet's where they exist.
type Options struct {
	// ConfigFile is a KubeletConfiguration file (config.go).
	ConfigFile string
	// BootstrapKubeconfig gets the node its client certificate when
	// Kubeconfig does not exist yet (TLS bootstrap, in CertDir).
	BootstrapKubeconfig, CertDir string
	// RotateCertificates renews the client certificate before it expires;
	// RotateServerCertificates gets the kubelet API's serving certificate
	// through a kubernetes.io/kubelet-serving CSR (serverTLSBootstrap).
	RotateCertificates, RotateServerCertificates bool
	// ProviderID is the Node's spec.providerID.
	ProviderID    string
	Kubeconfig    string
	NodeName      string
	Runtime       string
	SimulateNodes int
	NodeIP        string
	// Capacity overrides what the node reports it has (simulated nodes: all
	// of it; real ones measure the machine, MachineCapacity, and this
	// replaces single entries).
	Capacity string
	// SystemReserved and KubeReserved are kept from pods, as are the hard
	// eviction thresholds (the kubelet's node allocatable).
	SystemReserved, KubeReserved string
	MaxPods                      int
	RegisterWithTaints           []string
	// CloudProvider is "" or "external" (a cloud-controller-manager
	// initializes the node), as the kubelet's flag.
	CloudProvider string
	NodeLabels    map[string]string
	Workers       int
	// Remote runtime (containerd).
	RuntimeEndpoint, CgroupParent, PodLogDir string
	CgroupDriver                             string
	// EvictionHard are the thresholds of the pressure conditions.
	EvictionHard string
	// ContainerLogMaxSize and ContainerLogMaxFiles bound each container's
	// log files (the kubelet's containerLogMaxSize, containerLogMaxFiles).
	ContainerLogMaxSize  string
	ContainerLogMaxFiles int
	// PodManifestPath holds static pod manifests.
	PodManifestPath string
	// RootDir keeps per-pod files (volumes, termination messages) under pods/,
	// and the Localhost seccomp profiles under seccomp/.
	RootDir string
	// SeccompDefault confines containers without a seccompProfile with the
	// runtime's default profile; AllowedUnsafeSysctls are the sysctls
	// (or prefixes ending in *) pods may set beyond the safe ones.
	SeccompDefault       bool
	AllowedUnsafeSysctls []string
	// ClusterDNS, ClusterDomain and ResolvConf set up the pods' resolvers.
	ClusterDNS                []string
	ClusterDomain, ResolvConf string
	// The kubelet API server (remote runtime only).
	Address                               string
	Port                                  int
	TLSCertFile, TLSKeyFile, ClientCAFile string
	AnonymousAuth                         bool
	AuthorizationMode                     string
	HealthzBindAddress                    string
	HealthzPort                           int
}

// NewOptions returns the defaults: a simulated node of 4 cpu, 32Gi, 110 pods.
func NewOptions() *Options {
	return &Options{Runtime: "simulated", SimulateNodes: 1, MaxPods: node.DefaultMaxPods, Workers: 10, CgroupDriver: pods.CgroupDriverCgroupfs, PodLogDir: "/var/log/pods", NodeIP: "10.0.0.1", RootDir: "/var/lib/kubeparts-nodeagent", CertDir: "/var/lib/kubelet/pki", ResolvConf: "/etc/resolv.conf", EvictionHard: node.DefaultEvictionHard, ContainerLogMaxSize: "10Mi", ContainerLogMaxFiles: 5,
		Address: "0.0.0.0", Port: 10250, AuthorizationMode: "Webhook", HealthzBindAddress: "127.0.0.1", HealthzPort: 10248}
}

// AddFlags registers the flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ConfigFile, "config", o.ConfigFile, "a KubeletConfiguration file (kubelet.config.k8s.io/v1beta1), the kubelet's: its fields set the flags not given on the command line; fields the agent does not implement are refused unless at their default")
	fs.StringVar(&o.BootstrapKubeconfig, "bootstrap-kubeconfig", o.BootstrapKubeconfig, "kubeconfig (a bootstrap token) to request the node's client certificate with when --kubeconfig does not exist yet; the certificate goes to --cert-dir and --kubeconfig is written")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "directory of the node's certificates (kubelet-client-current.pem, kubelet-server-current.pem)")
	fs.BoolVar(&o.RotateCertificates, "rotate-certificates", o.RotateCertificates, "renew the client certificate through a CSR before it expires")
	fs.BoolVar(&o.RotateServerCertificates, "rotate-server-certificates", o.RotateServerCertificates, "get the kubelet API's serving certificate through a kubernetes.io/kubelet-serving CSR, and renew it (serverTLSBootstrap)")
	fs.StringVar(&o.ProviderID, "provider-id", o.ProviderID, "the Node's spec.providerID")
	var ignored string
	var ignoredBool bool
	fs.StringVar(&ignored, "pod-infra-container-image", "", "accepted for kubeadm's kubeadm-flags.env; no effect: the runtime's sandbox image is used, as by the kubelet since 1.27")
	fs.StringVar(&ignored, "runtime-cgroups", "", "accepted for kind's and kubeadm's drop-ins; no effect")
	fs.BoolVar(&ignoredBool, "fail-swap-on", false, "accepted for kubeadm's and kind's drop-ins; no effect: the agent runs with swap on")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig for kube-apiserver (identity system:node:<name> in group system:nodes for NodeRestriction)")
	fs.StringVar(&o.NodeName, "hostname-override", o.NodeName, "node name; with --simulate-nodes=N the nodes are <name>-0 ... <name>-(N-1)")
	fs.StringVar(&o.Runtime, "runtime", o.Runtime, "container runtime: simulated (in-process CRI) or remote (a CRI socket such as containerd's; experimental)")
	fs.StringVar(&o.RuntimeEndpoint, "container-runtime-endpoint", o.RuntimeEndpoint, "CRI endpoint for --runtime=remote, e.g. unix:///run/containerd/containerd.sock")
	fs.StringVar(&o.CgroupParent, "cgroup-parent", o.CgroupParent, "cgroup the pods' cgroups go under (--runtime=remote); with the systemd driver, empty is kubepods (kubepods.slice), as the kubelet's")
	fs.StringVar(&o.CgroupDriver, "cgroup-driver", o.CgroupDriver, "how the runtime names cgroups: cgroupfs (paths) or systemd (slices; containerd's SystemdCgroup = true)")
	fs.StringVar(&o.PodLogDir, "pod-log-dir", o.PodLogDir, "directory of the pods' container logs (--runtime=remote), the kubelet's podLogsDir")
	fs.StringVar(&o.ContainerLogMaxSize, "container-log-max-size", o.ContainerLogMaxSize, "a container's log is rotated when it reaches this size (--runtime=remote)")
	fs.IntVar(&o.ContainerLogMaxFiles, "container-log-max-files", o.ContainerLogMaxFiles, "log files kept per container, the current one included; at least 2 (--runtime=remote)")
	fs.StringVar(&o.EvictionHard, "eviction-hard", o.EvictionHard, "thresholds under which the node reports MemoryPressure/DiskPressure and evicts pods (memory.available, nodefs.available; --runtime=remote)")
	fs.StringVar(&o.PodManifestPath, "pod-manifest-path", o.PodManifestPath, "directory of static pod manifests, run with a mirror pod each (--runtime=remote)")
	fs.StringVar(&o.RootDir, "root-dir", o.RootDir, "directory of the agent's per-pod files (pods/<uid>/volumes, termination messages; --runtime=remote)")
	fs.StringSliceVar(&o.ClusterDNS, "cluster-dns", o.ClusterDNS, "IPs of the cluster DNS servers, the nameservers of ClusterFirst pods; none: they fall back to the Default policy (--runtime=remote)")
	fs.StringVar(&o.ClusterDomain, "cluster-domain", o.ClusterDomain, "the cluster's DNS domain, searched by ClusterFirst pods and under which pods with a subdomain are named (--runtime=remote)")
	fs.StringVar(&o.ResolvConf, "resolv-conf", o.ResolvConf, "the resolver configuration Default-policy pods inherit; empty: the local host's resolver only (--runtime=remote)")
	fs.BoolVar(&o.SeccompDefault, "seccomp-default", o.SeccompDefault, "run containers that set no seccompProfile under the runtime's default profile (RuntimeDefault) instead of Unconfined")
	fs.StringSliceVar(&o.AllowedUnsafeSysctls, "allowed-unsafe-sysctls", o.AllowedUnsafeSysctls, "namespaced sysctls, or prefixes ending in *, pods may set beyond the safe ones (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)")
	fs.IntVar(&o.SimulateNodes, "simulate-nodes", o.SimulateNodes, "nodes this process hosts (simulated runtime only)")
	fs.StringVar(&o.NodeIP, "node-ip", o.NodeIP, "the node's InternalIP (simulated nodes count up from it)")
	fs.StringVar(&o.Capacity, "capacity", o.Capacity, "node capacity as name=quantity pairs; simulated nodes default to "+simulatedCapacity+", real ones measure the machine (cpu, memory, the root dir's filesystem as ephemeral-storage) and take only the entries given here")
	fs.StringVar(&o.SystemReserved, "system-reserved", o.SystemReserved, "resources kept from pods for the system, as name=quantity pairs (cpu=100m,memory=1Gi,ephemeral-storage=1Gi)")
	fs.StringVar(&o.KubeReserved, "kube-reserved", o.KubeReserved, "resources kept from pods for Kubernetes' own daemons, as name=quantity pairs")
	fs.IntVar(&o.MaxPods, "max-pods", o.MaxPods, "pods the node runs at most (its pods capacity)")
	fs.StringVar(&o.CloudProvider, "cloud-provider", o.CloudProvider, "'external': a cloud-controller-manager initializes the node (it registers tainted node.cloudprovider.kubernetes.io/uninitialized and the cloud's addresses win); empty: none")
	fs.StringSliceVar(&o.RegisterWithTaints, "register-with-taints", o.RegisterWithTaints, "taints the node registers with, key=value:Effect")
	fs.Var((*labelsFlag)(&o.NodeLabels), "node-labels", "labels the node registers with, key=value,... (NodeRestriction forbids node-role.kubernetes.io/*); empty for none, as kind passes it")
	fs.IntVar(&o.Workers, "pod-workers", o.Workers, "pods synced in parallel")
	fs.StringVar(&o.Address, "address", o.Address, "address the kubelet API listens on (--runtime=remote)")
	fs.IntVar(&o.Port, "port", o.Port, "port of the kubelet API (logs, exec, attach, port-forward, metrics, stats); 0 disables it")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", o.TLSCertFile, "serving certificate of the kubelet API, with the node's IPs in its SANs; empty: self-signed")
	fs.StringVar(&o.TLSKeyFile, "tls-private-key-file", o.TLSKeyFile, "key of --tls-cert-file")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", o.ClientCAFile, "CA bundle verifying client certificates (kube-apiserver's kubelet client certificate)")
	fs.BoolVar(&o.AnonymousAuth, "anonymous-auth", o.AnonymousAuth, "let unauthenticated requests through as system:anonymous (still authorized); off by default, as kubeadm configures the kubelet")
	fs.StringVar(&o.HealthzBindAddress, "healthz-bind-address", o.HealthzBindAddress, "address of the unauthenticated /healthz endpoint")
	fs.IntVar(&o.HealthzPort, "healthz-port", o.HealthzPort, "port of the unauthenticated /healthz endpoint (the kubelet's 10248; --runtime=remote); 0 disables it")
	fs.StringVar(&o.AuthorizationMode, "authorization-mode", o.AuthorizationMode, "Webhook (SubjectAccessReview on nodes/<subresource>) or AlwaysAllow")
}

func parseResources(flag, v string) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	if strings.TrimSpace(v) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(kv, "=")
		q, err := resource.ParseQuantity(val)
		if !ok || err != nil {
			return nil, fmt.Errorf("--%s %q: want name=quantity pairs", flag, kv)
		}
		out[corev1.ResourceName(k)] = q
	}
	return out, nil
}

func parseTaint(v string) (corev1.Taint, error) {
	kv, effect, ok := strings.Cut(v, ":")
	k, val, _ := strings.Cut(kv, "=")
	t := corev1.Taint{Key: k, Value: val, Effect: corev1.TaintEffect(effect)}
	switch t.Effect {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		ok = false
	}
	if !ok || len(validation.IsQualifiedName(k)) > 0 {
		return t, fmt.Errorf("--register-with-taints %q: want key=value:NoSchedule|PreferNoSchedule|NoExecute", v)
	}
	return t, nil
}

// Validate reports every bad flag at once.
func (o *Options) Validate() []error {
	var errs []error
	switch o.Runtime {
	case "simulated":
	case "remote":
		if o.RuntimeEndpoint == "" {
			errs = append(errs, fmt.Errorf("--runtime=remote needs --container-runtime-endpoint"))
		}
		if o.SimulateNodes != 1 {
			errs = append(errs, fmt.Errorf("--simulate-nodes is for --runtime=simulated"))
		}
	default:
		errs = append(errs, fmt.Errorf("--runtime %q: want simulated or remote", o.Runtime))
	}
	if o.NodeName == "" || len(validation.IsDNS1123Subdomain(o.NodeName)) > 0 {
		errs = append(errs, fmt.Errorf("--hostname-override %q: must be a DNS subdomain", o.NodeName))
	}
	if o.SimulateNodes < 1 || o.SimulateNodes > 5000 {
		errs = append(errs, fmt.Errorf("--simulate-nodes %d: must be in [1, 5000]", o.SimulateNodes))
	}
	if net.ParseIP(o.NodeIP).To4() == nil {
		errs = append(errs, fmt.Errorf("--node-ip %q: must be an IPv4 address", o.NodeIP))
	}
	if _, err := parseResources("capacity", o.Capacity); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseResources("system-reserved", o.SystemReserved); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseResources("kube-reserved", o.KubeReserved); err != nil {
		errs = append(errs, err)
	}
	if o.MaxPods < 1 {
		errs = append(errs, fmt.Errorf("--max-pods %d: must be positive", o.MaxPods))
	}
	for _, t := range o.RegisterWithTaints {
		if _, err := parseTaint(t); err != nil {
			errs = append(errs, err)
		}
	}
	if o.CloudProvider != "" && o.CloudProvider != "external" {
		errs = append(errs, fmt.Errorf("--cloud-provider %q: only \"external\" (or empty) is supported, as by the kubelet: in-tree cloud providers are gone", o.CloudProvider))
	}
	for k := range o.NodeLabels {
		if strings.HasPrefix(k, "node-role.kubernetes.io/") {
			errs = append(errs, fmt.Errorf("--node-labels %s: NodeRestriction forbids a node to set node-role labels on itself", k))
		}
	}
	if _, err := podcri.NewSysctlAllowlist(o.AllowedUnsafeSysctls); err != nil {
		errs = append(errs, err)
	}
	for _, ip := range o.ClusterDNS {
		if net.ParseIP(ip) == nil {
			errs = append(errs, fmt.Errorf("--cluster-dns %q: not an IP address", ip))
		}
	}
	if o.ClusterDomain != "" && len(validation.IsDNS1123Subdomain(o.ClusterDomain)) > 0 {
		errs = append(errs, fmt.Errorf("--cluster-domain %q: must be a DNS subdomain", o.ClusterDomain))
	}
	if o.AuthorizationMode != "Webhook" && o.AuthorizationMode != "AlwaysAllow" {
		errs = append(errs, fmt.Errorf("--authorization-mode %q: want Webhook or AlwaysAllow", o.AuthorizationMode))
	}
	if o.Port < 0 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d: must be in [0, 65535]", o.Port))
	}
	if o.HealthzPort < 0 || o.HealthzPort > 65535 {
		errs = append(errs, fmt.Errorf("--healthz-port %d: must be in [0, 65535]", o.HealthzPort))
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		errs = append(errs, fmt.Errorf("--tls-cert-file and --tls-private-key-file go together"))
	}
	if _, err := node.ParseEvictionHard(o.EvictionHard); err != nil {
		errs = append(errs, err)
	}
	if o.CgroupDriver != pods.CgroupDriverCgroupfs && o.CgroupDriver != pods.CgroupDriverSystemd {
		errs = append(errs, fmt.Errorf("--cgroup-driver %q: want cgroupfs or systemd (as containerd's SystemdCgroup says)", o.CgroupDriver))
	}
	if o.Workers < 1 {
		errs = append(errs, fmt.Errorf("--pod-workers must be positive"))
	}
	if q, err := resource.ParseQuantity(o.ContainerLogMaxSize); err != nil || q.Value() <= 0 {
		errs = append(errs, fmt.Errorf("--container-log-max-size %q: want a positive quantity such as 10Mi", o.ContainerLogMaxSize))
	}
	if o.ContainerLogMaxFiles < 2 {
		errs = append(errs, fmt.Errorf("--container-log-max-files %d: must be at least 2", o.ContainerLogMaxFiles))
	}
	return errs
}

// csrTimeout bounds the wait for one certificate signing request.
const csrTimeout = 15 * time.Minute

// simulatedCapacity is a simulated node's capacity unless --capacity says otherwise.
const simulatedCapacity = "cpu=4,memory=32Gi,pods=110,ephemeral-storage=100Gi"

// capacity is what the node reports it has, and what of it is reserved:
// --system-reserved, --kube-reserved, and on a real node the hard eviction
// thresholds, as the kubelet computes allocatable.
func (o *Options) capacity() (capacity, reserved corev1.ResourceList) {
	if o.Runtime == "remote" {
		capacity = node.MachineCapacity(o.RootDir, int64(o.MaxPods))
	} else {
		capacity, _ = parseResources("capacity", simulatedCapacity)
		if o.MaxPods != node.DefaultMaxPods {
			capacity[corev1.ResourcePods] = *resource.NewQuantity(int64(o.MaxPods), resource.DecimalSI)
		}
	}
	given, _ := parseResources("capacity", o.Capacity)
	for name, q := range given {
		capacity[name] = q
	}
	reserved = corev1.ResourceList{}
	add := func(list corev1.ResourceList) {
		for name, q := range list {
			sum := reserved[name]
			sum.Add(q)
			reserved[name] = sum
		}
	}
	system, _ := parseResources("system-reserved", o.SystemReserved)
	kube, _ := parseResources("kube-reserved", o.KubeReserved)
	add(system)
	add(kube)
	if o.Runtime == "remote" {
		thresholds, _ := node.ParseEvictionHard(o.EvictionHard)
		add(thresholds.Reserve(capacity))
	}
	return capacity, reserved
}

// criReady reads a runtime's readiness through the CRI Status call and its
// images through ListImages.
type criReady struct {
	rt     internalapi.RuntimeService
	images internalapi.ImageManagerService
}

func (r criReady) Images(ctx context.Context) ([]corev1.ContainerImage, error) {
	list, err := r.images.ListImages(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := make([]corev1.ContainerImage, 0, len(list))
	for _, img := range list {
		names := append(append([]string{}, img.RepoDigests...), img.RepoTags...)
		if len(names) == 0 {
			continue
		}
		out = append(out, corev1.ContainerImage{Names: names, SizeBytes: int64(img.GetSize())})
	}
	return out, nil
}

func (r criReady) UpdatePodCIDR(ctx context.Context, cidrs string) error {
	return r.rt.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidrs}})
}

func (r criReady) Ready(ctx context.Context) (bool, bool, string) {
	st, err := r.rt.Status(ctx, false)
	if err != nil {
		return false, false, err.Error()
	}
	var rtOK, netOK bool
	for _, c := range st.GetStatus().GetConditions() {
		switch c.Type {
		case runtimeapi.RuntimeReady:
			rtOK = c.Status
		case runtimeapi.NetworkReady:
			netOK = c.Status
		}
	}
	return rtOK, netOK, "runtime or network not ready"
}

// Run starts the nodes and their pods and blocks until ctx ends.
func (o *Options) Run(ctx context.Context) error {
	clientCerts := certificate.Store{Dir: o.CertDir, Prefix: "kubelet-client"}
	if o.BootstrapKubeconfig != "" {
		if err := certificate.Bootstrap(ctx, o.Kubeconfig, o.BootstrapKubeconfig, clientCerts, o.NodeName, csrTimeout); err != nil {
			return err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.ContentType, cfg.UserAgent = "application/vnd.kubernetes.protobuf", "kubeparts-nodeagent"
	cfg.QPS, cfg.Burst = float32(20*o.SimulateNodes), 40*o.SimulateNodes
	client, err := kubeclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if o.RotateCertificates && cfg.CertFile == clientCerts.Path() {
		// client-go re-reads the file when it changes: writing it is all
		// a rotation takes.
		m := &certificate.Manager{Store: clientCerts, Client: client.CertificatesV1(), Signer: certificate.ClientSigner,
			Usages: certificate.ClientUsages, Timeout: csrTimeout, Template: func() *x509.CertificateRequest { return certificate.ClientTemplate(o.NodeName) }}
		go m.Run(ctx)
	}
	capacity, reserved := o.capacity()
	var taints []corev1.Taint
	for _, t := range o.RegisterWithTaints {
		taint, _ := parseTaint(t)
		taints = append(taints, taint)
	}
	external := o.CloudProvider == "external"
	if external {
		taints = append(taints, corev1.Taint{Key: node.TaintExternalCloudProvider, Value: "true", Effect: corev1.TaintEffectNoSchedule})
	}
	// Events aggregate repeats like the kubelet's (package events).
	broadcaster := events.NewBroadcaster(client.CoreV1())
	go broadcaster.Run(ctx)
	base := net.ParseIP(o.NodeIP).To4()
	sysctls, err := podcri.NewSysctlAllowlist(o.AllowedUnsafeSysctls)
	if err != nil {
		return err
	}
	var podNodes []pods.Node
	var keepers []*node.Keeper
	for i := range o.SimulateNodes {
		name := o.NodeName
		if o.SimulateNodes > 1 {
			name = fmt.Sprintf("%s-%d", o.NodeName, i)
		}
		ip := net.IPv4(base[0], base[1], base[2]+byte(i/250), base[3]+byte(i%250)).String()
		prefix := fmt.Sprintf("10.%d.%d", 128+i/256, i%256)
		var rt node.Runtime
		var pressure node.Pressure // simulated nodes have none
		var systemInfo corev1.NodeSystemInfo
		if o.Runtime == "remote" {
			systemInfo = node.SystemInfo()
		}
		pn := pods.Node{Name: name, HostIP: ip, Allocatable: node.Allocatable(capacity, reserved),
			Recorder: broadcaster.NewRecorder(corev1.EventSource{Component: "kubelet", Host: name}), Sysctls: sysctls,
			Security: podcri.Security{SeccompProfileRoot: filepath.Join(o.RootDir, "seccomp"), SeccompDefault: o.SeccompDefault}}
		if o.Runtime == "remote" {
			rs, is, err := runtime.Remote(ctx, o.RuntimeEndpoint)
			if err != nil {
				return err
			}
			pn.Runtime, pn.Images, pn.CgroupParent, pn.LogDir, pn.CgroupDriver = rs, is, o.CgroupParent, o.PodLogDir, o.CgroupDriver
			if pn.CgroupParent == "" && o.CgroupDriver == pods.CgroupDriverSystemd {
				pn.CgroupParent = "kubepods" // the kubelet's kubepods.slice
			}
			maxSize := resource.MustParse(o.ContainerLogMaxSize)
			pn.LogMaxSize, pn.LogMaxFiles = maxSize.Value(), o.ContainerLogMaxFiles
			pn.PodDir, pn.ManifestDir = filepath.Join(o.RootDir, "pods"), o.PodManifestPath
			pn.DNS = podcri.DNS{ClusterDNS: o.ClusterDNS, ClusterDomain: o.ClusterDomain, ResolvConf: o.ResolvConf}
			rt, prefix = criReady{rs, is}, ""
			thresholds, _ := node.ParseEvictionHard(o.EvictionHard)
			mp := node.MachinePressure{Thresholds: thresholds, Dir: o.RootDir}
			pressure, pn.Pressure = mp, mp
		} else {
			sim := runtime.NewSimulated(prefix)
			pn.Runtime, pn.Images, pn.Simulated, rt = sim, sim.Images, true, criReady{sim, sim.Images}
			prefix += ".0/24"
		}
		ver, err := pn.Runtime.Version(ctx, "v1")
		if err != nil {
			return fmt.Errorf("runtime version: %w", err)
		}
		pn.RuntimeName = ver.GetRuntimeName()
		keepers = append(keepers, node.NewKeeper(client, node.Config{
			Name: name, Capacity: capacity, Reserved: reserved, Labels: o.NodeLabels, Taints: taints,
			Addresses:    []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name}},
			KubeletPort:  int32(o.Port),
			AgentVersion: version.Get().GitVersion, RuntimeVersion: ver.GetRuntimeName() + "://" + ver.GetRuntimeVersion(), SystemInfo: systemInfo, ProviderID: o.ProviderID,
			PodCIDR: prefix, Pressure: pressure, ExternalCloudProvider: external,
		}, rt))
		podNodes = append(podNodes, pn)
	}
	if o.PodManifestPath != "" && o.Runtime == "remote" {
		if err := os.MkdirAll(o.PodManifestPath, 0o755); err != nil {
			return fmt.Errorf("--pod-manifest-path: %w", err)
		}
	}
	m, err := pods.NewManager(client, podNodes)
	if err != nil {
		return err
	}
	if o.Runtime == "remote" {
		m.Resync = 2 * time.Second
	}
	var wg sync.WaitGroup
	if o.Runtime == "remote" && o.Port > 0 {
		var serving func() *tls.Certificate
		if o.RotateServerCertificates {
			sm := &certificate.Manager{Store: certificate.Store{Dir: o.CertDir, Prefix: "kubelet-server"}, Client: client.CertificatesV1(),
				Signer: certificate.ServingSigner, Usages: certificate.ServingUsages, Timeout: csrTimeout,
				Template: func() *x509.CertificateRequest {
					return certificate.ServingTemplate(o.NodeName, []string{o.NodeName}, []net.IP{net.ParseIP(o.NodeIP)})
				}}
			go sm.Run(ctx)
			serving = sm.Current
		}
		srv, err := server.New(server.Config{NodeName: o.NodeName, NodeIP: o.NodeIP, Address: o.Address, Port: o.Port,
			CertFile: o.TLSCertFile, KeyFile: o.TLSKeyFile, ServingCertificate: serving, ClientCAFile: o.ClientCAFile, Anonymous: o.AnonymousAuth,
			AlwaysAllow: o.AuthorizationMode == "AlwaysAllow", Client: client, Runtime: podNodes[0].Runtime, Pods: m.Pods()})
		if err != nil {
			return err
		}
		ln, err := srv.Listen()
		if err != nil {
			return fmt.Errorf("kubelet API: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ctx, ln); err != nil {
				klog.FromContext(ctx).Error(err, "Kubelet API server stopped")
			}
		}()
	}
	if o.Runtime == "remote" && o.HealthzPort > 0 {
		// Like the kubelet's healthz port: plain HTTP on loopback, for
		// supervisors and liveness checks that hold no credentials.
		ln, err := net.Listen("tcp", net.JoinHostPort(o.HealthzBindAddress, fmt.Sprint(o.HealthzPort)))
		if err != nil {
			return fmt.Errorf("--healthz-port: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { <-ctx.Done(); _ = hs.Close() }()
		go func() { _ = hs.Serve(ln) }()
	}
	for _, k := range keepers {
		wg.Add(1)
		go func() { defer wg.Done(); k.Run(ctx) }()
	}
	klog.FromContext(ctx).Info("Running", "nodes", len(keepers), "runtime", o.Runtime)
	m.Run(ctx, o.Workers)
	wg.Wait()
	return nil
}

// labelsFlag is --node-labels as the kubelet reads it: key=value pairs separated by
// commas, and the empty string (kind's drop-in passes --node-labels="") for none.
type labelsFlag map[string]string

func (l *labelsFlag) String() string {
	var parts []string
	for k, v := range *l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (l *labelsFlag) Set(s string) error {
	if *l == nil {
		*l = map[string]string{}
	}
	for _, pair := range strings.Split(s, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return fmt.Errorf("%q: want key=value", pair)
		}
		(*l)[k] = v
	}
	return nil
}

func (l *labelsFlag) Type() string { return "mapStringString" }
