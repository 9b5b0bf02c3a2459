package localcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubeparts/kubeparts/config"
	"github.com/kubeparts/kubeparts/internal/controllernames"
)

// etcdArgs runs the i-th etcd member. The default topology's lone member listens on
// loopback with plain peer URLs (peer traffic never leaves the machine); an HA
// topology's members listen on their hosts' addresses and authenticate each other with
// peer certificates. A member whose data dir holds a cluster ignores the initial-*
// flags and rejoins it.
func (p *plan) etcdArgs(c *certs, i int) []string {
	h := p.topo.etcd[i]
	if !p.topo.ha() {
		peer := fmt.Sprintf("http://127.0.0.1:%d", p.ports.EtcdPeer)
		client := fmt.Sprintf("https://127.0.0.1:%d", p.ports.EtcdClient)
		return []string{
			"--name=default",
			"--data-dir=" + p.layout.Etcd,
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=default=" + peer,
			fmt.Sprintf("--listen-metrics-urls=http://127.0.0.1:%d", p.ports.EtcdMetrics),
			"--cert-file=" + c.etcdServer.CertFile,
			"--key-file=" + c.etcdServer.KeyFile,
			"--trusted-ca-file=" + c.etcdCA.CertFile,
			"--client-cert-auth=true",
			"--log-level=warn",
		}
	}
	var initial []string
	for _, m := range p.topo.etcd {
		initial = append(initial, fmt.Sprintf("%s=https://%s:%d", m.name, m.ip, p.ports.EtcdPeer))
	}
	client := fmt.Sprintf("https://%s:%d", h.ip, p.ports.EtcdClient)
	peer := fmt.Sprintf("https://%s:%d", h.ip, p.ports.EtcdPeer)
	return []string{
		"--name=" + h.name,
		"--data-dir=" + p.etcdDataDir(h),
		"--listen-client-urls=" + client + fmt.Sprintf(",https://127.0.0.1:%d", p.ports.EtcdClient),
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=" + strings.Join(initial, ","),
		"--initial-cluster-state=new",
		"--initial-cluster-token=kubeparts-" + p.layout.ID,
		fmt.Sprintf("--listen-metrics-urls=http://%s:%d", h.ip, p.ports.EtcdMetrics),
		"--cert-file=" + c.etcdServers[i].CertFile,
		"--key-file=" + c.etcdServers[i].KeyFile,
		"--trusted-ca-file=" + c.etcdCA.CertFile,
		"--client-cert-auth=true",
		"--peer-cert-file=" + c.etcdPeers[i].CertFile,
		"--peer-key-file=" + c.etcdPeers[i].KeyFile,
		"--peer-trusted-ca-file=" + c.etcdCA.CertFile,
		"--peer-client-cert-auth=true",
		"--log-level=warn",
	}
}

// etcdDataDir is where member h keeps its data: etcd/ for the default topology's,
// etcd-<host>/ for an HA topology's.
func (p *plan) etcdDataDir(h netHost) string {
	if !p.topo.ha() {
		return p.layout.Etcd
	}
	return p.layout.Etcd + "-" + h.name
}

// etcdHealthURL is member h's /health: 200 once it is part of a cluster with a leader.
func (p *plan) etcdHealthURL(h netHost) string {
	return fmt.Sprintf("http://%s:%d/health", p.local(h), p.ports.EtcdMetrics)
}

// etcdServers are the client URLs of every member.
func (p *plan) etcdServers() string {
	if !p.topo.ha() {
		return fmt.Sprintf("https://127.0.0.1:%d", p.ports.EtcdClient)
	}
	var urls []string
	for _, m := range p.topo.etcd {
		urls = append(urls, fmt.Sprintf("https://%s:%d", m.ip, p.ports.EtcdClient))
	}
	return strings.Join(urls, ",")
}

// local is the address a component of host h listens on for `up` (in the machine's
// network namespace) to check its health: loopback on the machine, the host's
// address in its own namespace.
func (p *plan) local(h netHost) string {
	if h.netns == "" {
		return "127.0.0.1"
	}
	return h.ip.String()
}

// apiserverArgs runs kube-apiserver on the i-th control-plane host, advertising that
// host's address (the kubernetes Service's endpoints are every host's) and talking to
// every etcd member.
func (p *plan) apiserverArgs(c *certs, i int) []string {
	h := p.topo.controlPlanes[i]
	dir := "kube-apiserver"
	if p.topo.ha() {
		dir += "-" + h.name
	}
	return []string{
		"--advertise-address=" + h.ip.String(),
		"--bind-address=0.0.0.0",
		fmt.Sprintf("--secure-port=%d", p.ports.APIServer),
		"--etcd-servers=" + p.etcdServers(),
		"--etcd-cafile=" + c.etcdCA.CertFile,
		"--etcd-certfile=" + c.apiserverEtcdClient.CertFile,
		"--etcd-keyfile=" + c.apiserverEtcdClient.KeyFile,
		"--client-ca-file=" + c.ca.CertFile,
		"--tls-cert-file=" + c.apiservers[i].CertFile,
		"--tls-private-key-file=" + c.apiservers[i].KeyFile,
		"--cert-dir=" + filepath.Join(p.layout.PKI, dir),
		"--service-cluster-ip-range=" + p.layout.ServiceCIDR.String(),
		"--service-account-issuer=https://kubernetes.default.svc." + clusterDomain,
		"--service-account-key-file=" + c.saPub,
		"--service-account-signing-key-file=" + c.saKey,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--kubelet-client-certificate=" + c.apiserverKubeletClient.CertFile,
		"--kubelet-client-key=" + c.apiserverKubeletClient.KeyFile,
		"--kubelet-certificate-authority=" + c.ca.CertFile,
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		// The front proxy: kube-apiserver authenticates to aggregated API servers with this
		// client certificate and passes the user in the requestheader headers.
		"--requestheader-client-ca-file=" + c.frontProxyCA.CertFile,
		"--requestheader-allowed-names=" + frontProxyClient,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + c.frontProxy.CertFile,
		"--proxy-client-key-file=" + c.frontProxy.KeyFile,
		// No kube-proxy runs here: reach aggregated servers through their Endpoints.
		"--enable-aggregator-routing=true",
		// On Ctrl-C the pods run until containerd's stop removes them, after
		// kube-apiserver's: their watches (CoreDNS's) would hold its graceful
		// shutdown open until its stop timeout killed it; this ends them after 2 s.
		"--shutdown-watch-termination-grace-period=2s",
	}
}

// stockControllers is the stock manager's --controllers value: everything it runs by
// default except what kubeparts-controller-manager took over.
func (p *plan) stockControllers() string {
	list := []string{"*"}
	if p.runKubeparts[RoleControllerManager] {
		for _, name := range controllernames.StockNames() {
			list = append(list, "-"+name)
		}
	}
	return strings.Join(list, ",")
}

// kubepartsControllerManagerArgs runs every implemented controller under its own
// Lease, each controller as its own ServiceAccount (as kubeadm runs the stock manager).
func (p *plan) kubepartsControllerManagerArgs(c *certs, h netHost) []string {
	return []string{
		"--kubeconfig=" + c.kubepartsCM,
		"--controllers=" + strings.Join(controllernames.Names(), ","),
		"--use-service-account-credentials=true",
		"--bind-address=" + p.local(h),
		fmt.Sprintf("--secure-port=%d", p.ports.KubepartsCMMetrics),
		fmt.Sprintf("--health-probe-bind-address=%s:%d", p.local(h), p.ports.KubepartsCMHealth),
		"--cert-dir=" + p.certDir("kubeparts-controller-manager", h),
		fmt.Sprintf("--leader-elect=%t", p.topo.ha()),
	}
}

// certDir is where a component of host h keeps the self-signed serving certificate it
// makes itself: one per host, as each host has its own disk.
func (p *plan) certDir(component string, h netHost) string {
	if h.netns == "" {
		return filepath.Join(p.layout.PKI, component)
	}
	return filepath.Join(p.layout.PKI, component+"-"+h.name)
}

// servingArgs are the flags the controller manager and the scheduler share: one identity
// for the API and for delegated authn/authz of their own endpoints, which listen on
// loopback with a self-signed certificate kept in the data dir (not /var/run/kubernetes,
// which two clusters would share).
func (p *plan) servingArgs(kubeconfig, name string, port int, h netHost) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=" + p.local(h),
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + p.certDir(name, h),
		// One instance: a Lease left by the previous run would only delay a restart by the
		// lease duration. One per control-plane host: exactly one leads.
		fmt.Sprintf("--leader-elect=%t", p.topo.ha()),
	}
}

func (p *plan) controllerManagerArgs(c *certs, h netHost) []string {
	args := append(p.servingArgs(c.controllerManager, "kube-controller-manager", p.ports.ControllerManager, h),
		"--controllers="+p.stockControllers(),
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+c.saKey,
		"--root-ca-file="+c.ca.CertFile,
		"--cluster-signing-cert-file="+c.ca.CertFile,
		"--cluster-signing-key-file="+c.ca.KeyFile,
		"--service-cluster-ip-range="+p.layout.ServiceCIDR.String(),
	)
	if p.runKubeparts[RoleCloud] {
		// Node IPAM, as kubeadm's podSubnet turns it on: each Node gets a /24 of
		// the cluster CIDR in spec.podCIDR, which the cloud's route controller
		// routes and the node's runtime hands out.
		args = append(args, "--allocate-node-cidrs=true", "--cluster-cidr="+p.layout.ClusterCIDR.String(), "--node-cidr-mask-size=24")
	}
	return args
}

func (p *plan) schedulerArgs(c *certs, h netHost) []string {
	return p.servingArgs(c.scheduler, "kube-scheduler", p.ports.Scheduler, h)
}

// kubepartsSchedulerArgs runs kubeparts-scheduler with the shipped profile
// (config/scheduler/profile.yaml), pointed at this cluster's kubeconfig and
// with leader election only in an HA topology, like the other components here. With
// --config the scheduler ignores --kubeconfig and --leader-elect, so both go in the file.
func (p *plan) kubepartsSchedulerArgs(c *certs, h netHost) ([]string, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(config.SchedulerProfile, &cfg); err != nil {
		return nil, fmt.Errorf("shipped scheduler profile: %w", err)
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": c.scheduler}
	le, _ := cfg["leaderElection"].(map[string]any)
	if le == nil {
		le = map[string]any{}
	}
	le["leaderElect"] = p.topo.ha() // the profile's Lease: the stock scheduler's
	cfg["leaderElection"] = le
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(p.layout.Kubeconfigs, "kubeparts-scheduler.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, err
	}
	var args []string
	for _, a := range p.servingArgs(c.scheduler, "kubeparts-scheduler", p.ports.Scheduler, h) {
		if !strings.HasPrefix(a, "--kubeconfig=") && !strings.HasPrefix(a, "--leader-elect=") {
			args = append(args, a)
		}
	}
	return append(args, "--config="+path), nil
}

// kubepartsAPIServerArgs runs kubeparts-apiserver on the node's IP (kube-apiserver
// reaches it there through the APIService's Endpoints), trusting the cluster CA
// for kubelets, and reporting this cluster's pieces (etcd through its members).
func (p *plan) kubepartsAPIServerArgs(c *certs, h netHost) []string {
	args := []string{
		"--kubeconfig=" + c.kubepartsAPIServer,
		"--authentication-kubeconfig=" + c.kubepartsAPIServer,
		"--authorization-kubeconfig=" + c.kubepartsAPIServer,
		"--bind-address=" + h.ip.String(),
		fmt.Sprintf("--secure-port=%d", p.ports.KubepartsAPIServer),
		"--cert-dir=" + p.certDir("kubeparts-apiserver", h),
		"--restarts-file=" + restartsFile(p.layout),
		"--tls-cert-file=" + c.kubepartsAPIServerServing.CertFile,
		"--tls-private-key-file=" + c.kubepartsAPIServerServing.KeyFile,
		"--kubelet-certificate-authority=" + c.ca.CertFile,
		"--metric-resolution=10s",
		"--etcd-servers=" + p.etcdServers(),
		"--etcd-cafile=" + c.etcdCA.CertFile,
		"--etcd-certfile=" + c.apiserverEtcdClient.CertFile,
		"--etcd-keyfile=" + c.apiserverEtcdClient.KeyFile,
	}
	// Every instance of every leader-elected piece, on every host it runs on, and
	// the copies of kubeparts-apiserver itself.
	for _, comp := range p.controllers() {
		role := map[string]string{"kube-controller-manager": "controller-manager", "kubeparts-controller-manager": "controller-manager",
			"kube-scheduler": "scheduler", "kubeparts-scheduler": "scheduler", "kubeparts-cloud-controller-manager": "cloud-controller-manager",
			"kubeparts-apiserver": "api-extension"}[comp.name]
		// kubeparts-apiserver reports itself; its copies are listed when there are several.
		if role == "" || (comp.name == "kubeparts-apiserver" && !p.topo.ha()) {
			continue
		}
		for _, on := range comp.hosts(p) {
			name := comp.name
			if p.topo.ha() && on.netns != "" {
				name += "/" + on.name // the copy on that host
			}
			args = append(args, fmt.Sprintf("--control-plane-component=%s=%s@%s", role, name, comp.health(p, on)))
		}
	}
	sort.Strings(args)
	return args
}

// proxyArgs runs kubeparts-proxy as node n's proxy: the cluster's own table
// name and ports (the host's node shares its network namespace with any
// other cluster on the machine), kube-proxy's identity, and the host's
// conntrack settings left alone (a development cluster shares the machine).
func (p *plan) proxyArgs(c *certs, n nodeSpec) []string {
	return append([]string{
		"--kubeconfig=" + c.proxies[n.index],
		"--hostname-override=" + n.name,
		"--cluster-cidr=" + p.layout.ClusterCIDR.String(),
		"--nftables-table=" + p.layout.ProxyTable,
		fmt.Sprintf("--healthz-bind-address=0.0.0.0:%d", p.ports.ProxyHealthz),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", p.ports.ProxyMetrics),
		"--conntrack-max-per-core=0",
		"--conntrack-tcp-timeout-established=0",
		"--conntrack-tcp-timeout-close-wait=0",
	}, p.ProxyArgs...)
}

// writeKubeProxyConfig writes the stock kube-proxy's configuration for node
// n: nftables mode, with the same settings as proxyArgs. Its table is always
// named kube-proxy, so two clusters with --stock=proxy on one machine share it.
func (p *plan) writeKubeProxyConfig(c *certs, n nodeSpec) (string, error) {
	cfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: %q
hostnameOverride: %q
clusterCIDR: %q
healthzBindAddress: "0.0.0.0:%d"
metricsBindAddress: "127.0.0.1:%d"
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, c.proxies[n.index], n.name, p.layout.ClusterCIDR.String(), p.ports.ProxyHealthz, p.ports.ProxyMetrics)
	path := filepath.Join(n.dir, "kube-proxy.yaml")
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

// proxyHealthURL is node n's proxy /healthz, reachable from the host.
func (p *plan) proxyHealthURL(n nodeSpec) string {
	host := "127.0.0.1"
	if n.netns != "" {
		host = n.ip.String()
	}
	return fmt.Sprintf("http://%s:%d/healthz", host, p.ports.ProxyHealthz)
}
