package localcluster

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeparts/kubeparts/internal/pki"
)

const (
	clusterDomain    = "cluster.local"
	frontProxyClient = "front-proxy-client"
)

// certs are the files the components are started with.
type certs struct {
	ca, frontProxyCA, etcdCA          *pki.CA
	apiserver, apiserverKubeletClient pki.Pair
	apiserverEtcdClient, frontProxy   pki.Pair
	etcdServer                        pki.Pair
	// By control-plane host and by etcd host: each serves with its own addresses
	// (index 0 is apiserver and etcdServer above in the default topology). etcd
	// members authenticate each other with peer certificates.
	apiservers, etcdServers, etcdPeers  []pki.Pair
	kubepartsAPIServerServing           pki.Pair
	saKey, saPub                        string
	admin, controllerManager, scheduler string // kubeconfig paths
	kubepartsCM, kubepartsAPIServer     string
	cloud                               string // kubeparts-cloud-controller-manager's kubeconfig
	// proxies are the node proxies' kubeconfigs (system:kube-proxy, which the
	// bootstrap ClusterRoleBinding system:node-proxier binds), by node index.
	proxies []string
	nodes   []nodeCerts // by node index
}

// nodeCerts are one node's: its agent's identity towards kube-apiserver and the serving
// certificate of its kubelet API.
type nodeCerts struct {
	kubeconfig string
	serving    pki.Pair
}

// client identities, as kubeadm names them, so RBAC's bootstrap roles apply unchanged.
func (p *plan) ensureCerts() (*certs, error) {
	dir := p.layout.PKI
	var c certs
	var err error
	if c.ca, err = pki.LoadOrCreateCA(dir, "ca", "kubeparts-ca"); err != nil {
		return nil, err
	}
	if c.frontProxyCA, err = pki.LoadOrCreateCA(dir, "front-proxy-ca", "kubeparts-front-proxy-ca"); err != nil {
		return nil, err
	}
	if c.etcdCA, err = pki.LoadOrCreateCA(dir, "etcd-ca", "kubeparts-etcd-ca"); err != nil {
		return nil, err
	}
	loopback := net.IPv4(127, 0, 0, 1)
	issue := []struct {
		ca   *pki.CA
		name string
		into *pki.Pair
		spec pki.Spec
	}{
		{c.ca, "apiserver", &c.apiserver, pki.Spec{
			CommonName: "kube-apiserver", Server: true,
			DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + clusterDomain},
			IPs:      []net.IP{loopback, p.hostIP, p.kubernetesServiceIP()},
		}},
		// system:masters lets kube-apiserver pass the kubelet's webhook authorization for
		// logs, exec and port-forward without an extra RBAC binding.
		{c.ca, "apiserver-kubelet-client", &c.apiserverKubeletClient, pki.Spec{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}, Client: true}},
		{c.etcdCA, "apiserver-etcd-client", &c.apiserverEtcdClient, pki.Spec{CommonName: "kube-apiserver-etcd-client", Client: true}},
		{c.etcdCA, "etcd-server", &c.etcdServer, pki.Spec{CommonName: "etcd", Server: true, Client: true, DNSNames: []string{"localhost"}, IPs: []net.IP{loopback}}},
		{c.frontProxyCA, frontProxyClient, &c.frontProxy, pki.Spec{CommonName: frontProxyClient, Client: true}},
		// kubeparts-apiserver's serving certificate, signed by the cluster CA which its
		// APIServices carry as caBundle: kube-apiserver reaches it at the node's IP.
		{c.ca, "kubeparts-apiserver-serving", &c.kubepartsAPIServerServing, pki.Spec{
			CommonName: "kubeparts-apiserver", Server: true,
			DNSNames: []string{"localhost", "kubeparts-apiserver.kube-system.svc", "kubeparts-apiserver.kube-system.svc." + clusterDomain},
			IPs:      append([]net.IP{loopback, p.hostIP}, p.topo.controlPlaneIPs()...),
		}},
	}
	for _, i := range issue {
		if *i.into, err = i.ca.LoadOrIssue(dir, i.name, i.spec); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", i.name, err)
		}
	}
	if err := p.hostCerts(&c); err != nil {
		return nil, err
	}
	if c.saKey, c.saPub, err = pki.LoadOrCreateKeyPair(dir, "sa"); err != nil {
		return nil, err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", p.ports.APIServer)
	type kubeconfig struct {
		path   *string
		file   string
		user   string
		group  []string
		server string // "": kube-apiserver on loopback
	}
	kubeconfigs := []kubeconfig{
		{&c.admin, p.layout.AdminKubeconfig, "kubernetes-admin", []string{"system:masters"}, ""},
		{&c.controllerManager, filepath.Join(p.layout.Kubeconfigs, "controller-manager.kubeconfig"), "system:kube-controller-manager", nil, ""},
		{&c.scheduler, filepath.Join(p.layout.Kubeconfigs, "scheduler.kubeconfig"), "system:kube-scheduler", nil, ""},
		// Bound to config/rbac/controller-manager.yaml's ClusterRole.
		{&c.kubepartsCM, filepath.Join(p.layout.Kubeconfigs, "kubeparts-controller-manager.kubeconfig"), "kubeparts-controller-manager", nil, ""},
		// Bound to config/rbac/cloud-controller-manager.yaml.
		{&c.cloud, filepath.Join(p.layout.Kubeconfigs, "cloud-controller-manager.kubeconfig"), "kubeparts-cloud-controller-manager", nil, ""},
		// Bound to config/rbac/apiserver.yaml; also its identity towards the kubelets.
		{&c.kubepartsAPIServer, filepath.Join(p.layout.Kubeconfigs, "kubeparts-apiserver.kubeconfig"), "kubeparts-apiserver", nil, ""},
	}
	// Each node's agent as system:node:<name> in system:nodes, so the Node
	// authorizer and NodeRestriction apply. Workers reach kube-apiserver at the
	// host's address: their loopback is their own.
	c.nodes = make([]nodeCerts, len(p.nodes))
	for i, n := range p.nodes {
		k := kubeconfig{&c.nodes[i].kubeconfig, filepath.Join(p.layout.Kubeconfigs, "kubelet-"+n.name+".kubeconfig"), "system:node:" + n.name, []string{"system:nodes"}, ""}
		if n.netns != "" {
			k.server = fmt.Sprintf("https://%s:%d", p.hostIP, p.ports.APIServer)
		}
		kubeconfigs = append(kubeconfigs, k)
	}
	// The proxies: one identity, a kubeconfig per node (workers reach
	// kube-apiserver at the host's address).
	c.proxies = make([]string, len(p.nodes))
	for i, n := range p.nodes {
		k := kubeconfig{&c.proxies[i], filepath.Join(p.layout.Kubeconfigs, "proxy-"+n.name+".kubeconfig"), "system:kube-proxy", nil, ""}
		if n.netns != "" {
			k.server = fmt.Sprintf("https://%s:%d", p.hostIP, p.ports.APIServer)
		}
		kubeconfigs = append(kubeconfigs, k)
	}
	for _, k := range kubeconfigs {
		pair, err := c.ca.LoadOrIssue(dir, "client-"+sanitize(k.user), pki.Spec{CommonName: k.user, Organization: k.group, Client: true})
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", k.user, err)
		}
		url := server
		if k.server != "" {
			url = k.server
		}
		if err := writeKubeconfig(k.file, url, c.ca.CertPEM, pair); err != nil {
			return nil, err
		}
		*k.path = k.file
	}
	// Each node's kubelet API serves with its node's IP: kube-apiserver
	// verifies it when proxying logs and exec.
	for i, n := range p.nodes {
		if c.nodes[i].serving, err = c.ca.LoadOrIssue(dir, "kubelet-serving-"+n.name, pki.Spec{
			CommonName: "system:node:" + n.name, Organization: []string{"system:nodes"}, Server: true,
			DNSNames: []string{n.name, "localhost"}, IPs: []net.IP{n.ip, loopback},
		}); err != nil {
			return nil, fmt.Errorf("certificate kubelet-serving-%s: %w", n.name, err)
		}
	}
	return &c, nil
}

// hostCerts issues the certificates of each control-plane and etcd host of an HA
// topology: kube-apiserver's serving certificate with the host's address beside the
// load balancer's (the machine's) and the kubernetes Service's, and each etcd member's
// server and peer certificates with its address.
func (p *plan) hostCerts(c *certs) error {
	if !p.topo.ha() {
		c.apiservers, c.etcdServers, c.etcdPeers = []pki.Pair{c.apiserver}, []pki.Pair{c.etcdServer}, []pki.Pair{{}}
		return nil
	}
	loopback := net.IPv4(127, 0, 0, 1)
	issue := func(ca *pki.CA, name string, spec pki.Spec) (pki.Pair, error) {
		pair, err := ca.LoadOrIssue(p.layout.PKI, name, spec)
		if err != nil {
			return pki.Pair{}, fmt.Errorf("certificate %s: %w", name, err)
		}
		return pair, nil
	}
	for _, h := range p.topo.controlPlanes {
		pair, err := issue(c.ca, "apiserver-"+h.name, pki.Spec{
			CommonName: "kube-apiserver", Server: true,
			DNSNames: []string{"localhost", h.name, "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + clusterDomain},
			IPs:      []net.IP{loopback, h.ip, p.hostIP, p.kubernetesServiceIP()},
		})
		if err != nil {
			return err
		}
		c.apiservers = append(c.apiservers, pair)
	}
	for _, h := range p.topo.etcd {
		server, err := issue(c.etcdCA, "etcd-server-"+h.name, pki.Spec{CommonName: h.name, Server: true, Client: true, DNSNames: []string{"localhost", h.name}, IPs: []net.IP{loopback, h.ip}})
		if err != nil {
			return err
		}
		peer, err := issue(c.etcdCA, "etcd-peer-"+h.name, pki.Spec{CommonName: h.name, Server: true, Client: true, DNSNames: []string{h.name}, IPs: []net.IP{h.ip}})
		if err != nil {
			return err
		}
		c.etcdServers, c.etcdPeers = append(c.etcdServers, server), append(c.etcdPeers, peer)
	}
	return nil
}

// controlPlaneIPs are the addresses of an HA topology's control-plane hosts (none in
// the default one: the machine's address is there already).
func (t topology) controlPlaneIPs() []net.IP {
	if !t.ha() {
		return nil
	}
	var ips []net.IP
	for _, h := range t.controlPlanes {
		ips = append(ips, h.ip)
	}
	return ips
}

// kubernetesServiceIP is the first address of the service range: the
// kubernetes Service, which pods reach kube-apiserver through.
func (p *plan) kubernetesServiceIP() net.IP {
	ip := p.layout.ServiceCIDR.IP.To4()
	return net.IPv4(ip[0], ip[1], ip[2], ip[3]+1).To4()
}

func sanitize(user string) string {
	out := []byte(user)
	for i, b := range out {
		if b == ':' {
			out[i] = '-'
		}
	}
	return string(out)
}

// writeKubeconfig embeds the certificates so the file stands alone.
func writeKubeconfig(path, server string, caPEM []byte, pair pki.Pair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubeparts"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: pair.CertPEM, ClientKeyData: pair.KeyPEM}
	cfg.Contexts["kubeparts"] = &clientcmdapi.Context{Cluster: "kubeparts", AuthInfo: "user"}
	cfg.CurrentContext = "kubeparts"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
