package config

import (
	"net"
	"time"
)

// Load balancing modes (--load-balancing).
const (
	// LoadBalancingRandom picks an endpoint at random per new connection, as
	// kube-proxy's nftables mode does.
	LoadBalancingRandom = "random"
	// LoadBalancingRoundRobin cycles through the endpoints per new
	// connection (nftables numgen inc), which kube-proxy does not offer.
	LoadBalancingRoundRobin = "round-robin"
)

// NodePortAddressesPrimary is kube-proxy's special --nodeport-addresses value:
// NodePorts on the node's primary IPs (its Node's InternalIPs) only.
const NodePortAddressesPrimary = "primary"

// Config is kubeparts-proxy's validated configuration: flags merged with the
// --config file. Every field has kube-proxy's meaning and default.
type Config struct {
	// Kubeconfig is the path of the kubeconfig (empty: in-cluster).
	Kubeconfig string
	// Master overrides the kubeconfig's server.
	Master string
	// ClientQPS, ClientBurst and ContentType configure the API client
	// (clientConnection in the config file).
	ClientQPS   float32
	ClientBurst int
	ContentType string

	// HostnameOverride names this node (the Node whose IPs and topology labels
	// are used, and whose endpoints are local). Lower-cased host name when
	// unset.
	HostnameOverride string
	// ClusterCIDRs: traffic from outside them to a ClusterIP is masqueraded
	// (detect-local by cluster CIDR). Empty: never masquerade by source.
	ClusterCIDRs []*net.IPNet
	// NodePortAddresses are CIDRs, or the single value "primary"; NodePorts are
	// served on the node's addresses inside them.
	NodePortAddresses []string
	// MasqueradeAll masquerades all traffic to Services.
	MasqueradeAll bool
	// MasqueradeBit is the fwmark bit (0-31) that marks packets to masquerade.
	MasqueradeBit int

	// MinSyncPeriod is the least time between two syncs of the rules; SyncPeriod
	// the most between two full syncs.
	MinSyncPeriod, SyncPeriod time.Duration

	// MetricsBindAddress (host:port, "" or port 0 to disable) serves /metrics;
	// HealthzBindAddress serves /healthz and /livez.
	MetricsBindAddress, HealthzBindAddress string
	// EnableProfiling serves /debug/pprof on the metrics server (kube-proxy's
	// --profiling and enableProfiling).
	EnableProfiling bool

	// LoadBalancing is LoadBalancingRandom or LoadBalancingRoundRobin.
	LoadBalancing string
	// TableName is the nftables table (family ip) that kubeparts-proxy owns.
	TableName string

	// Conntrack settings, applied as sysctls at start as kube-proxy does; zero
	// leaves the kernel's value.
	Conntrack Conntrack

	// Cleanup removes everything kubeparts-proxy created and exits.
	Cleanup bool

	// Verbosity is logging.verbosity from the --config file (0 without one).
	// Added so that a kube-proxy ConfigMap raising the log level keeps
	// working; the command applies it to klog unless -v was given, as
	// kube-proxy lets its logging flags win over the file.
	Verbosity uint32
}

// Conntrack holds kube-proxy's conntrack settings.
type Conntrack struct {
	MaxPerCore            int32
	Min                   int32
	TCPEstablishedTimeout time.Duration
	TCPCloseWaitTimeout   time.Duration
	UDPTimeout            time.Duration
	UDPStreamTimeout      time.Duration
	TCPBeLiberal          bool
}
