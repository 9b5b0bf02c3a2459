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

func (p *plan) etcdArgs(c *certs) []string {
	peer := fmt.Sprintf("http://127.0.0.1:%d", p.ports.EtcdPeer)
	client := fmt.Sprintf("https://127.0.0.1:%d", p.ports.EtcdClient)
	return []string{
		"--name=default",
		"--data-dir=" + p.layout.Etcd,
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		// One member on loopback: peer traffic never leaves the machine, so it stays plain.
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

func (p *plan) apiserverArgs(c *certs) []string {
	return []string{
		"--advertise-address=" + p.hostIP.String(),
		"--bind-address=0.0.0.0",
		fmt.Sprintf("--secure-port=%d", p.ports.APIServer),
		fmt.Sprintf("--etcd-servers=https://127.0.0.1:%d", p.ports.EtcdClient),
		"--etcd-cafile=" + c.etcdCA.CertFile,
		"--etcd-certfile=" + c.apiserverEtcdClient.CertFile,
		"--etcd-keyfile=" + c.apiserverEtcdClient.KeyFile,
		"--client-ca-file=" + c.ca.CertFile,
		"--tls-cert-file=" + c.apiserver.CertFile,
		"--tls-private-key-file=" + c.apiserver.KeyFile,
		"--cert-dir=" + filepath.Join(p.layout.PKI, "kube-apiserver"),
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
func (p *plan) kubepartsControllerManagerArgs(c *certs) []string {
	return []string{
		"--kubeconfig=" + c.kubepartsCM,
		"--controllers=" + strings.Join(controllernames.Names(), ","),
		"--use-service-account-credentials=true",
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", p.ports.KubepartsCMMetrics),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", p.ports.KubepartsCMHealth),
		"--cert-dir=" + filepath.Join(p.layout.PKI, "kubeparts-controller-manager"),
		"--leader-elect=false",
	}
}

// servingArgs are the flags the controller manager and the scheduler share: one identity
// for the API and for delegated authn/authz of their own endpoints, which listen on
// loopback with a self-signed certificate kept in the data dir (not /var/run/kubernetes,
// which two clusters would share).
func (p *plan) servingArgs(kubeconfig, name string, port int) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + filepath.Join(p.layout.PKI, name),
		// One instance: a Lease left by the previous run would only delay a restart by the
		// lease duration.
		"--leader-elect=false",
	}
}

func (p *plan) controllerManagerArgs(c *certs) []string {
	args := append(p.servingArgs(c.controllerManager, "kube-controller-manager", p.ports.ControllerManager),
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

func (p *plan) schedulerArgs(c *certs) []string {
	return p.servingArgs(c.scheduler, "kube-scheduler", p.ports.Scheduler)
}

// kubepartsSchedulerArgs runs kubeparts-scheduler with the shipped profile
// (config/scheduler/profile.yaml), pointed at this cluster's kubeconfig and
// without leader election like the other components here. With --config the
// scheduler ignores --kubeconfig and --leader-elect, so both go in the file.
func (p *plan) kubepartsSchedulerArgs(c *certs) ([]string, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(config.SchedulerProfile, &cfg); err != nil {
		return nil, fmt.Errorf("shipped scheduler profile: %w", err)
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": c.scheduler}
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(p.layout.Kubeconfigs, "kubeparts-scheduler.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, err
	}
	var args []string
	for _, a := range p.servingArgs(c.scheduler, "kubeparts-scheduler", p.ports.Scheduler) {
		if !strings.HasPrefix(a, "--kubeconfig=") && !strings.HasPrefix(a, "--leader-elect=") {
			args = append(args, a)
		}
	}
	return append(args, "--config="+path), nil
}

// kubepartsAPIServerArgs runs kubeparts-apiserver on the node's IP (kube-apiserver
// reaches it there through the APIService's Endpoints), trusting the cluster CA
// for kubelets, and reporting this cluster's pieces (etcd through its members).
func (p *plan) kubepartsAPIServerArgs(c *certs) []string {
	args := []string{
		"--kubeconfig=" + c.kubepartsAPIServer,
		"--authentication-kubeconfig=" + c.kubepartsAPIServer,
		"--authorization-kubeconfig=" + c.kubepartsAPIServer,
		"--bind-address=" + p.hostIP.String(),
		fmt.Sprintf("--secure-port=%d", p.ports.KubepartsAPIServer),
		"--tls-cert-file=" + c.kubepartsAPIServerServing.CertFile,
		"--tls-private-key-file=" + c.kubepartsAPIServerServing.KeyFile,
		"--kubelet-certificate-authority=" + c.ca.CertFile,
		"--metric-resolution=10s",
		"--etcd-servers=" + fmt.Sprintf("https://127.0.0.1:%d", p.ports.EtcdClient),
		"--etcd-cafile=" + c.etcdCA.CertFile,
		"--etcd-certfile=" + c.apiserverEtcdClient.CertFile,
		"--etcd-keyfile=" + c.apiserverEtcdClient.KeyFile,
	}
	for binary, url := range p.healthURLs() {
		role := map[string]string{"kube-controller-manager": "controller-manager", "kubeparts-controller-manager": "controller-manager",
			"kube-scheduler": "scheduler", "kubeparts-scheduler": "scheduler", "kubeparts-cloud-controller-manager": "cloud-controller-manager"}[binary]
		if role != "" && p.binaries[binary] != "" {
			args = append(args, fmt.Sprintf("--control-plane-component=%s=%s@%s", role, binary, url))
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
