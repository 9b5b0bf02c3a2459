package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	netutils "k8s.io/utils/net"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	// proxyModeNFTables is the only --proxy-mode / mode kubeparts-proxy runs.
	proxyModeNFTables = "nftables"

	// kube-proxy's well-known ports (k8s.io/kubernetes/pkg/cluster/ports), added
	// to a bind address given as a bare IP.
	defaultMetricsPort = 10249
	defaultHealthzPort = 10256

	defaultTableName = "kubeparts-proxy"

	// The config file's apiVersion and kind: the only KubeProxyConfiguration
	// version kube-proxy 1.36 reads.
	configAPIVersion = "kubeproxy.config.k8s.io/v1alpha1"
	configKind       = "KubeProxyConfiguration"

	// Defaults of config-file fields kubeparts-proxy does not implement: a
	// file may spell them out (kubeadm writes some), so they are accepted.
	kubeProxyOOMScoreAdj     = -999 // k8s.io/kubernetes/pkg/kubelet/qos
	kubeProxyConfigSync      = 15 * time.Minute
	kubeProxyLogFlush        = 5 * time.Second // component-base logs default
	kubeProxyIPTablesSync    = 30 * time.Second
	kubeProxyIPTablesMinSync = time.Second
	kubeProxyMasqueradeBit   = 14
)

// tableNameRE is what kubeparts-proxy accepts as an nft table name: a strict
// subset of nft identifiers that needs no quoting anywhere.
var tableNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// Options holds kubeparts-proxy's command-line flags. Fields keep the flag
// values; Complete merges them with the --config file.
type Options struct {
	// ConfigFile is the KubeProxyConfiguration file (--config).
	ConfigFile string

	Kubeconfig         string
	Master             string
	KubeAPIQPS         float32
	KubeAPIBurst       int32
	KubeAPIContentType string

	HostnameOverride string
	// ClusterCIDR is the comma-separated --cluster-cidr, split by Complete.
	ClusterCIDR       string
	NodePortAddresses []string
	MasqueradeAll     bool
	Profiling         bool
	MasqueradeBit     int32
	// MinSyncPeriod and SyncPeriod are bound to both --min-sync-period /
	// --sync-period and kube-proxy's --iptables-min-sync-period /
	// --iptables-sync-period (which it uses for the nftables mode too).
	MinSyncPeriod time.Duration
	SyncPeriod    time.Duration

	MetricsBindAddress string
	HealthzBindAddress string

	ConntrackMaxPerCore            int32
	ConntrackMin                   int32
	ConntrackTCPEstablishedTimeout time.Duration
	ConntrackTCPCloseWaitTimeout   time.Duration
	ConntrackUDPTimeout            time.Duration
	ConntrackUDPStreamTimeout      time.Duration
	ConntrackTCPBeLiberal          bool

	Cleanup   bool
	ProxyMode string

	// LoadBalancing and TableName are kubeparts-proxy's own flags.
	LoadBalancing string
	TableName     string

	// hostname returns the host name; a field so that tests need not depend
	// on the machine's.
	hostname func() (string, error)
}

// defaultConfig is kube-proxy's defaults for the nftables mode (flag defaults
// and pkg/proxy/apis/config/v1alpha1 defaulting), plus kubeparts-proxy's own.
// HostnameOverride and ClusterCIDRs are left empty: Complete fills them.
func defaultConfig() Config {
	return Config{
		ClientQPS:          5,
		ClientBurst:        10,
		ContentType:        "application/vnd.kubernetes.protobuf",
		NodePortAddresses:  []string{NodePortAddressesPrimary},
		MasqueradeBit:      kubeProxyMasqueradeBit,
		MinSyncPeriod:      time.Second,
		SyncPeriod:         30 * time.Second,
		MetricsBindAddress: net.JoinHostPort("127.0.0.1", strconv.Itoa(defaultMetricsPort)),
		HealthzBindAddress: net.JoinHostPort("0.0.0.0", strconv.Itoa(defaultHealthzPort)),
		LoadBalancing:      LoadBalancingRandom,
		TableName:          defaultTableName,
		Conntrack: Conntrack{
			MaxPerCore:            32 * 1024,
			Min:                   128 * 1024,
			TCPEstablishedTimeout: 24 * time.Hour,
			TCPCloseWaitTimeout:   time.Hour,
		},
	}
}

// NewOptions returns Options holding the defaults, so that --help shows them.
func NewOptions() *Options {
	d := defaultConfig()
	return &Options{
		KubeAPIQPS:                     d.ClientQPS,
		KubeAPIBurst:                   int32(d.ClientBurst),
		KubeAPIContentType:             d.ContentType,
		NodePortAddresses:              d.NodePortAddresses,
		MasqueradeBit:                  int32(d.MasqueradeBit),
		MinSyncPeriod:                  d.MinSyncPeriod,
		SyncPeriod:                     d.SyncPeriod,
		MetricsBindAddress:             d.MetricsBindAddress,
		HealthzBindAddress:             d.HealthzBindAddress,
		ConntrackMaxPerCore:            d.Conntrack.MaxPerCore,
		ConntrackMin:                   d.Conntrack.Min,
		ConntrackTCPEstablishedTimeout: d.Conntrack.TCPEstablishedTimeout,
		ConntrackTCPCloseWaitTimeout:   d.Conntrack.TCPCloseWaitTimeout,
		ProxyMode:                      proxyModeNFTables,
		LoadBalancing:                  d.LoadBalancing,
		TableName:                      d.TableName,
		hostname:                       os.Hostname,
	}
}

// AddFlags registers kube-proxy's flags that kubeparts-proxy implements, and
// its own, on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ConfigFile, "config", o.ConfigFile, "Path of a kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration file. Flags given on the command line override its values.")
	fs.BoolVar(&o.Cleanup, "cleanup", o.Cleanup, "Remove the nftables table and everything else kubeparts-proxy created, then exit.")
	fs.StringVar(&o.ProxyMode, "proxy-mode", o.ProxyMode, "Proxy mode. kubeparts-proxy implements only 'nftables'; any other value is an error.")

	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path of the kubeconfig file with the API server location and credentials (empty: in-cluster configuration).")
	fs.StringVar(&o.Master, "master", o.Master, "API server address; overrides the kubeconfig's server.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Queries per second allowed to the API server.")
	fs.Int32Var(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst of queries allowed to the API server above --kube-api-qps.")
	fs.StringVar(&o.KubeAPIContentType, "kube-api-content-type", o.KubeAPIContentType, "Content type of requests sent to the API server.")

	fs.StringVar(&o.HostnameOverride, "hostname-override", o.HostnameOverride, "Name of this node's Node object. Empty: the host name, lower-cased.")
	fs.StringVar(&o.ClusterCIDR, "cluster-cidr", o.ClusterCIDR, "Pod CIDR of the cluster, or a comma-separated IPv4,IPv6 pair. Traffic to a ClusterIP from outside it is masqueraded. Empty: none.")
	fs.StringSliceVar(&o.NodePortAddresses, "nodeport-addresses", o.NodePortAddresses, "Comma-separated CIDRs of the node addresses that serve NodePorts, or the single value 'primary' for the node's primary IPs (from its Node object).")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "Serve Go's /debug/pprof handlers on the --metrics-bind-address server.")
	fs.BoolVar(&o.MasqueradeAll, "masquerade-all", o.MasqueradeAll, "Masquerade (SNAT) all traffic sent to Service cluster IPs.")
	fs.Int32Var(&o.MasqueradeBit, "iptables-masquerade-bit", o.MasqueradeBit, "Bit of the packet mark (fwmark) that marks packets to masquerade, 0 to 31. kube-proxy's name for it, in the nftables mode too.")

	fs.DurationVar(&o.SyncPeriod, "sync-period", o.SyncPeriod, "Longest time between two full syncs of the nftables rules. Must be greater than 0.")
	fs.DurationVar(&o.MinSyncPeriod, "min-sync-period", o.MinSyncPeriod, "Shortest time between two syncs of the nftables rules; 0 syncs on every Service or EndpointSlice change.")
	// kube-proxy's names for the two above (it has no --sync-period): a
	// DaemonSet written for kube-proxy keeps working.
	fs.DurationVar(&o.SyncPeriod, "iptables-sync-period", o.SyncPeriod, "Same as --sync-period (kube-proxy's name, used by its nftables mode too).")
	fs.DurationVar(&o.MinSyncPeriod, "iptables-min-sync-period", o.MinSyncPeriod, "Same as --min-sync-period (kube-proxy's name, used by its nftables mode too).")

	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, fmt.Sprintf("IP:port of the /metrics server; a bare IP gets port %d. Empty, or port 0, disables it.", defaultMetricsPort))
	fs.StringVar(&o.HealthzBindAddress, "healthz-bind-address", o.HealthzBindAddress, fmt.Sprintf("IP:port of the /healthz and /livez server; a bare IP gets port %d. Empty, or port 0, disables it.", defaultHealthzPort))

	fs.Int32Var(&o.ConntrackMaxPerCore, "conntrack-max-per-core", o.ConntrackMaxPerCore, "Conntrack entries to allow per CPU core (0: leave the kernel's limit and ignore --conntrack-min).")
	fs.Int32Var(&o.ConntrackMin, "conntrack-min", o.ConntrackMin, "Least conntrack entries to allow, whatever --conntrack-max-per-core gives.")
	fs.DurationVar(&o.ConntrackTCPEstablishedTimeout, "conntrack-tcp-timeout-established", o.ConntrackTCPEstablishedTimeout, "Conntrack timeout of idle established TCP connections (0: leave the kernel's).")
	fs.DurationVar(&o.ConntrackTCPCloseWaitTimeout, "conntrack-tcp-timeout-close-wait", o.ConntrackTCPCloseWaitTimeout, "Conntrack timeout of TCP connections in CLOSE_WAIT (0: leave the kernel's).")
	fs.DurationVar(&o.ConntrackUDPTimeout, "conntrack-udp-timeout", o.ConntrackUDPTimeout, "Conntrack timeout of idle UDP flows that got no reply (0: leave the kernel's).")
	fs.DurationVar(&o.ConntrackUDPStreamTimeout, "conntrack-udp-timeout-stream", o.ConntrackUDPStreamTimeout, "Conntrack timeout of idle UDP flows seen in both directions (0: leave the kernel's).")
	fs.BoolVar(&o.ConntrackTCPBeLiberal, "conntrack-tcp-be-liberal", o.ConntrackTCPBeLiberal, "Set nf_conntrack_tcp_be_liberal, so out-of-window TCP packets are not marked INVALID.")

	fs.StringVar(&o.LoadBalancing, "load-balancing", o.LoadBalancing, "How a Service's endpoint is picked for a new connection: 'random' (as kube-proxy) or 'round-robin'.")
	fs.StringVar(&o.TableName, "nftables-table", o.TableName, "Name of the nftables table kubeparts-proxy owns: a letter, then letters, digits, '-' or '_', at most 64 characters.")
}

// Complete loads the --config file if one is given, applies the flags that fs
// says were set on the command line over it, fills in kube-proxy's defaults
// and validates the result. fs must be the set AddFlags registered on (nil:
// no flag counts as set). Every error names the flag or file field at fault;
// all of them are returned at once.
func (o *Options) Complete(fs *pflag.FlagSet) (*Config, error) {
	r := &resolver{cfg: defaultConfig(), from: map[string]string{}}
	var errs []error
	if o.ConfigFile != "" {
		kpc, err := loadConfigFile(o.ConfigFile)
		if err != nil {
			return nil, err
		}
		errs = append(errs, r.applyFile(kpc)...)
	}
	r.applyFlags(o, fs)
	hostname := o.hostname
	if hostname == nil {
		hostname = os.Hostname
	}
	errs = append(errs, r.resolve(hostname)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &r.cfg, nil
}

// resolver merges defaults, the file and the flags, remembering where each
// value came from so that errors can name it.
type resolver struct {
	cfg Config
	// Values Config keeps in another form, or that get a late default.
	clusterCIDRs     []string
	hostnameOverride string
	mode             string
	// from maps a flag name to the config-file field, or the flag spelling,
	// that last set its value; absent: the default, named after the flag.
	from map[string]string
}

// name is how errors call the setting behind flag.
func (r *resolver) name(flag string) string {
	if n, ok := r.from[flag]; ok {
		return n
	}
	return "--" + flag
}

func loadConfigFile(path string) (*kubeproxyv1alpha1.KubeProxyConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	kpc, err := decodeConfig(data)
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	return kpc, nil
}

// decodeConfig decodes a KubeProxyConfiguration, YAML or JSON, strictly.
func decodeConfig(data []byte) (*kubeproxyv1alpha1.KubeProxyConfiguration, error) {
	// The strict conversion rejects duplicate keys, which JSON decoding could
	// no longer see.
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	// Check the type first: for another kind, unknown-field errors would be
	// noise.
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, err
	}
	if tm.APIVersion != configAPIVersion || tm.Kind != configKind {
		return nil, fmt.Errorf("apiVersion/kind: want %s %s, got %q %q", configAPIVersion, configKind, tm.APIVersion, tm.Kind)
	}
	// sigs.k8s.io/json, as the API machinery uses: case-sensitive field
	// names, and strict errors that give the field's full path.
	var kpc kubeproxyv1alpha1.KubeProxyConfiguration
	strict, err := kjson.UnmarshalStrict(js, &kpc)
	if err != nil {
		return nil, err
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("strict decoding: %w", errors.Join(strict...))
	}
	return &kpc, nil
}

// applyFile takes the file's values over the defaults and returns an error
// for each field kubeparts-proxy does not implement that is set to anything
// but kube-proxy's default. An empty (zero) field means "default", as in
// kube-proxy's own defaulting.
func (r *resolver) applyFile(kpc *kubeproxyv1alpha1.KubeProxyConfiguration) []error {
	var errs []error
	unsupported := func(field, why string) {
		errs = append(errs, fmt.Errorf("%s: not supported by kubeparts-proxy (%s)", field, why))
	}
	const nftOnly = "nftables mode only"
	set := func(flag, field string) { r.from[flag] = field }

	// bindAddress only overrides the node's primary IP in kube-proxy, which
	// kubeparts-proxy always takes from its Node: the unspecified addresses
	// kubeadm writes are fine, and their family picks the default bind
	// addresses as in kube-proxy; a real IP would silently change nothing.
	if b := kpc.BindAddress; b != "" {
		ip := netutils.ParseIPSloppy(b)
		switch {
		case ip == nil:
			errs = append(errs, fmt.Errorf("bindAddress: %q is not an IP address", b))
		case !ip.IsUnspecified():
			unsupported("bindAddress", "the node's primary IP comes from its Node object; use 0.0.0.0 or ::")
		case ip.To4() == nil:
			r.cfg.MetricsBindAddress = net.JoinHostPort("::1", strconv.Itoa(defaultMetricsPort))
			r.cfg.HealthzBindAddress = net.JoinHostPort("::", strconv.Itoa(defaultHealthzPort))
		}
	}

	cc := kpc.ClientConnection
	if cc.Kubeconfig != "" {
		r.cfg.Kubeconfig = cc.Kubeconfig
	}
	if cc.ContentType != "" {
		r.cfg.ContentType = cc.ContentType
	}
	if cc.QPS != 0 {
		r.cfg.ClientQPS = cc.QPS
	}
	if cc.Burst != 0 {
		r.cfg.ClientBurst = int(cc.Burst)
		set("kube-api-burst", "clientConnection.burst")
	}
	// Config has no Accept header setting; kube-proxy has no flag for it
	// either, so it is rarely set.
	if cc.AcceptContentTypes != "" {
		unsupported("clientConnection.acceptContentTypes", "the client sends its default Accept header")
	}

	if kpc.HostnameOverride != "" {
		r.hostnameOverride = kpc.HostnameOverride
		set("hostname-override", "hostnameOverride")
	}
	if kpc.ClusterCIDR != "" {
		r.clusterCIDRs = splitList(kpc.ClusterCIDR)
		set("cluster-cidr", "clusterCIDR")
	}
	if len(kpc.NodePortAddresses) > 0 {
		r.cfg.NodePortAddresses = trimAll(kpc.NodePortAddresses)
		set("nodeport-addresses", "nodePortAddresses")
	}
	if kpc.Mode != "" {
		// Checked after the flags, which may override it.
		r.mode = string(kpc.Mode)
		set("proxy-mode", "mode")
	}
	if kpc.MetricsBindAddress != "" {
		r.cfg.MetricsBindAddress = kpc.MetricsBindAddress
		set("metrics-bind-address", "metricsBindAddress")
	}
	if kpc.HealthzBindAddress != "" {
		r.cfg.HealthzBindAddress = kpc.HealthzBindAddress
		set("healthz-bind-address", "healthzBindAddress")
	}

	// kube-proxy's nftables mode reads these from the nftables section.
	nft := kpc.NFTables
	if nft.MasqueradeBit != nil {
		r.cfg.MasqueradeBit = int(*nft.MasqueradeBit)
		set("iptables-masquerade-bit", "nftables.masqueradeBit")
	}
	if nft.MasqueradeAll {
		r.cfg.MasqueradeAll = true
	}
	// As in kube-proxy, 0 means "default": a zero minSyncPeriod cannot be
	// asked for in the file, only with the flag.
	if nft.SyncPeriod.Duration != 0 {
		r.cfg.SyncPeriod = nft.SyncPeriod.Duration
		set("sync-period", "nftables.syncPeriod")
	}
	if nft.MinSyncPeriod.Duration != 0 {
		r.cfg.MinSyncPeriod = nft.MinSyncPeriod.Duration
		set("min-sync-period", "nftables.minSyncPeriod")
	}

	// kube-proxy ignores the iptables section in nftables mode. A value set
	// there is most likely left from an iptables-mode setup and meant to
	// apply, so say where it belongs instead of dropping it.
	ipt := kpc.IPTables
	if ipt.MasqueradeBit != nil && *ipt.MasqueradeBit != kubeProxyMasqueradeBit {
		unsupported("iptables.masqueradeBit", nftOnly+"; set nftables.masqueradeBit")
	}
	if ipt.MasqueradeAll {
		unsupported("iptables.masqueradeAll", nftOnly+"; set nftables.masqueradeAll")
	}
	if d := ipt.SyncPeriod.Duration; d != 0 && d != kubeProxyIPTablesSync {
		unsupported("iptables.syncPeriod", nftOnly+"; set nftables.syncPeriod")
	}
	if d := ipt.MinSyncPeriod.Duration; d != 0 && d != kubeProxyIPTablesMinSync {
		unsupported("iptables.minSyncPeriod", nftOnly+"; set nftables.minSyncPeriod")
	}
	// iptables.localhostNodePorts is accepted either way: the nftables mode
	// never serves NodePorts on localhost, which is what either value
	// amounts to outside the iptables mode.

	// The IPVS and Windows backends do not exist here.
	ipvs := kpc.IPVS
	if ipvs.SyncPeriod.Duration != 0 {
		unsupported("ipvs.syncPeriod", nftOnly)
	}
	if ipvs.MinSyncPeriod.Duration != 0 {
		unsupported("ipvs.minSyncPeriod", nftOnly)
	}
	if ipvs.Scheduler != "" {
		unsupported("ipvs.scheduler", nftOnly)
	}
	if len(ipvs.ExcludeCIDRs) > 0 {
		unsupported("ipvs.excludeCIDRs", nftOnly)
	}
	if ipvs.StrictARP {
		unsupported("ipvs.strictARP", nftOnly)
	}
	if ipvs.TCPTimeout.Duration != 0 {
		unsupported("ipvs.tcpTimeout", nftOnly)
	}
	if ipvs.TCPFinTimeout.Duration != 0 {
		unsupported("ipvs.tcpFinTimeout", nftOnly)
	}
	if ipvs.UDPTimeout.Duration != 0 {
		unsupported("ipvs.udpTimeout", nftOnly)
	}
	const windowsOnly = "Windows only"
	wk := kpc.Winkernel
	if wk.NetworkName != "" {
		unsupported("winkernel.networkName", windowsOnly)
	}
	if wk.SourceVip != "" {
		unsupported("winkernel.sourceVip", windowsOnly)
	}
	if wk.EnableDSR {
		unsupported("winkernel.enableDSR", windowsOnly)
	}
	if wk.RootHnsEndpointName != "" {
		unsupported("winkernel.rootHnsEndpointName", windowsOnly)
	}
	if wk.ForwardHealthCheckVip {
		unsupported("winkernel.forwardHealthCheckVip", windowsOnly)
	}
	if kpc.WindowsRunAsService {
		unsupported("windowsRunAsService", windowsOnly)
	}

	// Local traffic is told by --cluster-cidr only. The detectLocal settings
	// serve the other modes, so a value there means one of them is intended.
	if m := kpc.DetectLocalMode; m != "" && m != "ClusterCIDR" {
		unsupported("detectLocalMode", fmt.Sprintf("%q; only ClusterCIDR", string(m)))
	}
	if kpc.DetectLocal.BridgeInterface != "" {
		unsupported("detectLocal.bridgeInterface", "detectLocalMode ClusterCIDR only")
	}
	if kpc.DetectLocal.InterfaceNamePrefix != "" {
		unsupported("detectLocal.interfaceNamePrefix", "detectLocalMode ClusterCIDR only")
	}

	// kube-proxy's feature gates switch kube-proxy code that is not here.
	if len(kpc.FeatureGates) > 0 {
		gates := make([]string, 0, len(kpc.FeatureGates))
		for g := range kpc.FeatureGates {
			gates = append(gates, g)
		}
		sort.Strings(gates)
		unsupported("featureGates", "it has no feature gates; got "+strings.Join(gates, ", "))
	}

	// Process and server settings with no counterpart in kubeparts-proxy;
	// their defaults are accepted since kubeadm spells some of them out.
	if kpc.OOMScoreAdj != nil && *kpc.OOMScoreAdj != kubeProxyOOMScoreAdj {
		unsupported("oomScoreAdj", "set the container's OOM score through its resources instead")
	}
	if kpc.BindAddressHardFail {
		unsupported("bindAddressHardFail", "binding failures follow kubeparts-proxy's own policy")
	}
	r.cfg.EnableProfiling = kpc.EnableProfiling
	if kpc.ShowHiddenMetricsForVersion != "" {
		unsupported("showHiddenMetricsForVersion", "its metrics have no hidden ones")
	}
	if d := kpc.ConfigSyncPeriod.Duration; d != 0 && d != kubeProxyConfigSync {
		unsupported("configSyncPeriod", "informers use their own resync")
	}
	// Unused by kube-proxy itself since the userspace mode went away.
	if kpc.PortRange != "" {
		unsupported("portRange", "the userspace mode it configured no longer exists")
	}

	// logging: verbosity is carried to Config; the rest would need the
	// component-base logging setup, which kubeparts-proxy does not use.
	lg := kpc.Logging
	r.cfg.Verbosity = uint32(lg.Verbosity)
	if lg.Format != "" && lg.Format != "text" {
		unsupported("logging.format", "text only")
	}
	if d := lg.FlushFrequency.Duration.Duration; d != 0 && d != kubeProxyLogFlush {
		unsupported("logging.flushFrequency", "klog's default only")
	}
	if len(lg.VModule) > 0 {
		unsupported("logging.vmodule", "use logging.verbosity")
	}
	for _, out := range []struct {
		field string
		split bool
		size  int64
	}{
		{"logging.options.text", lg.Options.Text.SplitStream, lg.Options.Text.InfoBufferSize.Value()},
		{"logging.options.json", lg.Options.JSON.SplitStream, lg.Options.JSON.InfoBufferSize.Value()},
	} {
		if out.split {
			unsupported(out.field+".splitStream", "alpha logging options")
		}
		if out.size != 0 {
			unsupported(out.field+".infoBufferSize", "alpha logging options")
		}
	}

	// conntrack: null means kube-proxy's default; for the UDP timeouts, which
	// are not pointers, 0 already means "leave the kernel's".
	ct := kpc.Conntrack
	if ct.MaxPerCore != nil {
		r.cfg.Conntrack.MaxPerCore = *ct.MaxPerCore
		set("conntrack-max-per-core", "conntrack.maxPerCore")
	}
	if ct.Min != nil {
		r.cfg.Conntrack.Min = *ct.Min
		set("conntrack-min", "conntrack.min")
	}
	if ct.TCPEstablishedTimeout != nil {
		r.cfg.Conntrack.TCPEstablishedTimeout = ct.TCPEstablishedTimeout.Duration
		set("conntrack-tcp-timeout-established", "conntrack.tcpEstablishedTimeout")
	}
	if ct.TCPCloseWaitTimeout != nil {
		r.cfg.Conntrack.TCPCloseWaitTimeout = ct.TCPCloseWaitTimeout.Duration
		set("conntrack-tcp-timeout-close-wait", "conntrack.tcpCloseWaitTimeout")
	}
	if ct.UDPTimeout.Duration != 0 {
		r.cfg.Conntrack.UDPTimeout = ct.UDPTimeout.Duration
		set("conntrack-udp-timeout", "conntrack.udpTimeout")
	}
	if ct.UDPStreamTimeout.Duration != 0 {
		r.cfg.Conntrack.UDPStreamTimeout = ct.UDPStreamTimeout.Duration
		set("conntrack-udp-timeout-stream", "conntrack.udpStreamTimeout")
	}
	if ct.TCPBeLiberal {
		r.cfg.Conntrack.TCPBeLiberal = true
	}
	return errs
}

// applyFlags takes the values of the flags set on the command line.
func (r *resolver) applyFlags(o *Options, fs *pflag.FlagSet) {
	if fs == nil {
		return
	}
	flag := func(name string, apply func()) {
		if fs.Changed(name) {
			apply()
			r.from[name] = "--" + name
		}
	}
	flag("kubeconfig", func() { r.cfg.Kubeconfig = o.Kubeconfig })
	flag("master", func() { r.cfg.Master = o.Master })
	flag("kube-api-qps", func() { r.cfg.ClientQPS = o.KubeAPIQPS })
	flag("kube-api-burst", func() { r.cfg.ClientBurst = int(o.KubeAPIBurst) })
	flag("kube-api-content-type", func() { r.cfg.ContentType = o.KubeAPIContentType })
	// An empty --hostname-override is "unset", as in kube-proxy: kubeadm's
	// DaemonSet passes $(NODE_NAME), which may expand to nothing.
	if fs.Changed("hostname-override") && o.HostnameOverride != "" {
		r.hostnameOverride = o.HostnameOverride
		r.from["hostname-override"] = "--hostname-override"
	}
	flag("cluster-cidr", func() { r.clusterCIDRs = splitList(o.ClusterCIDR) })
	flag("nodeport-addresses", func() { r.cfg.NodePortAddresses = trimAll(o.NodePortAddresses) })
	flag("masquerade-all", func() { r.cfg.MasqueradeAll = o.MasqueradeAll })
	flag("profiling", func() { r.cfg.EnableProfiling = o.Profiling })
	flag("iptables-masquerade-bit", func() { r.cfg.MasqueradeBit = int(o.MasqueradeBit) })
	// Each pair shares one variable, so the value is the last one given;
	// errors name the spelling used.
	for _, n := range []string{"sync-period", "iptables-sync-period"} {
		if fs.Changed(n) {
			r.cfg.SyncPeriod = o.SyncPeriod
			r.from["sync-period"] = "--" + n
		}
	}
	for _, n := range []string{"min-sync-period", "iptables-min-sync-period"} {
		if fs.Changed(n) {
			r.cfg.MinSyncPeriod = o.MinSyncPeriod
			r.from["min-sync-period"] = "--" + n
		}
	}
	flag("metrics-bind-address", func() { r.cfg.MetricsBindAddress = strings.TrimSpace(o.MetricsBindAddress) })
	flag("healthz-bind-address", func() { r.cfg.HealthzBindAddress = strings.TrimSpace(o.HealthzBindAddress) })
	flag("conntrack-max-per-core", func() { r.cfg.Conntrack.MaxPerCore = o.ConntrackMaxPerCore })
	flag("conntrack-min", func() { r.cfg.Conntrack.Min = o.ConntrackMin })
	flag("conntrack-tcp-timeout-established", func() { r.cfg.Conntrack.TCPEstablishedTimeout = o.ConntrackTCPEstablishedTimeout })
	flag("conntrack-tcp-timeout-close-wait", func() { r.cfg.Conntrack.TCPCloseWaitTimeout = o.ConntrackTCPCloseWaitTimeout })
	flag("conntrack-udp-timeout", func() { r.cfg.Conntrack.UDPTimeout = o.ConntrackUDPTimeout })
	flag("conntrack-udp-timeout-stream", func() { r.cfg.Conntrack.UDPStreamTimeout = o.ConntrackUDPStreamTimeout })
	flag("conntrack-tcp-be-liberal", func() { r.cfg.Conntrack.TCPBeLiberal = o.ConntrackTCPBeLiberal })
	flag("cleanup", func() { r.cfg.Cleanup = o.Cleanup })
	flag("proxy-mode", func() { r.mode = o.ProxyMode })
	flag("load-balancing", func() { r.cfg.LoadBalancing = o.LoadBalancing })
	flag("nftables-table", func() { r.cfg.TableName = o.TableName })
}

// invalid records a validation error against the setting behind flag.
func (r *resolver) invalid(errs *[]error, flag, format string, args ...any) {
	*errs = append(*errs, fmt.Errorf("%s: %s", r.name(flag), fmt.Sprintf(format, args...)))
}

// resolve fills in the late defaults, checks every value and converts the
// ones Config keeps parsed.
func (r *resolver) resolve(hostname func() (string, error)) []error {
	var errs []error
	c := &r.cfg

	// "" is kube-proxy's "unset"; here it can only mean nftables.
	if r.mode != "" && r.mode != proxyModeNFTables {
		r.invalid(&errs, "proxy-mode", "%q: kubeparts-proxy implements only the nftables mode", r.mode)
	}

	// Node names are lower case; trimming and lower-casing the override too
	// matches kube-proxy (nodeutil.GetHostname).
	if h := r.hostnameOverride; h != "" {
		c.HostnameOverride = strings.ToLower(strings.TrimSpace(h))
		if c.HostnameOverride == "" {
			r.invalid(&errs, "hostname-override", "%q is blank", h)
		}
	} else if h, err := hostname(); err != nil {
		errs = append(errs, fmt.Errorf("--hostname-override unset and the host name is unknown: %w", err))
	} else if c.HostnameOverride = strings.ToLower(strings.TrimSpace(h)); c.HostnameOverride == "" {
		errs = append(errs, errors.New("--hostname-override unset and the host name is empty"))
	}

	if c.ClientBurst < 0 {
		r.invalid(&errs, "kube-api-burst", "must not be negative, got %d", c.ClientBurst)
	}

	// Detect-local works per IP family with one CIDR each, as in kube-proxy.
	c.ClusterCIDRs = nil
	for _, s := range r.clusterCIDRs {
		_, n, err := netutils.ParseCIDRSloppy(s)
		if err != nil {
			r.invalid(&errs, "cluster-cidr", "%q is not a CIDR", s)
			continue
		}
		c.ClusterCIDRs = append(c.ClusterCIDRs, n)
	}
	switch cidrs := c.ClusterCIDRs; {
	case len(cidrs) > 2:
		r.invalid(&errs, "cluster-cidr", "at most two CIDRs, one IPv4 and one IPv6, got %d", len(cidrs))
	case len(cidrs) == 2 && netutils.IsIPv4CIDR(cidrs[0]) == netutils.IsIPv4CIDR(cidrs[1]):
		r.invalid(&errs, "cluster-cidr", "two CIDRs must be one IPv4 and one IPv6, got %s and %s", cidrs[0], cidrs[1])
	}

	// kube-proxy's nftables mode defaults an empty list to "primary".
	if len(c.NodePortAddresses) == 0 {
		c.NodePortAddresses = []string{NodePortAddressesPrimary}
	}
	for _, a := range c.NodePortAddresses {
		if a == NodePortAddressesPrimary {
			if len(c.NodePortAddresses) > 1 {
				r.invalid(&errs, "nodeport-addresses", "%q cannot be mixed with CIDRs", NodePortAddressesPrimary)
			}
			continue
		}
		if _, _, err := netutils.ParseCIDRSloppy(a); err != nil {
			r.invalid(&errs, "nodeport-addresses", "%q is neither a CIDR nor %q", a, NodePortAddressesPrimary)
		}
	}

	if c.MasqueradeBit < 0 || c.MasqueradeBit > 31 {
		r.invalid(&errs, "iptables-masquerade-bit", "must be within 0..31, got %d", c.MasqueradeBit)
	}

	if c.SyncPeriod <= 0 {
		r.invalid(&errs, "sync-period", "must be greater than 0, got %s", c.SyncPeriod)
	}
	if c.MinSyncPeriod < 0 {
		r.invalid(&errs, "min-sync-period", "must not be negative, got %s", c.MinSyncPeriod)
	} else if c.SyncPeriod > 0 && c.MinSyncPeriod > c.SyncPeriod {
		r.invalid(&errs, "min-sync-period", "%s exceeds %s (%s)", c.MinSyncPeriod, r.name("sync-period"), c.SyncPeriod)
	}

	var err error
	if c.MetricsBindAddress, err = bindAddress(c.MetricsBindAddress, defaultMetricsPort); err != nil {
		r.invalid(&errs, "metrics-bind-address", "%v", err)
	}
	if c.HealthzBindAddress, err = bindAddress(c.HealthzBindAddress, defaultHealthzPort); err != nil {
		r.invalid(&errs, "healthz-bind-address", "%v", err)
	}

	if c.Conntrack.MaxPerCore < 0 {
		r.invalid(&errs, "conntrack-max-per-core", "must not be negative, got %d", c.Conntrack.MaxPerCore)
	}
	if c.Conntrack.Min < 0 {
		r.invalid(&errs, "conntrack-min", "must not be negative, got %d", c.Conntrack.Min)
	}
	for _, d := range []struct {
		flag string
		val  time.Duration
	}{
		{"conntrack-tcp-timeout-established", c.Conntrack.TCPEstablishedTimeout},
		{"conntrack-tcp-timeout-close-wait", c.Conntrack.TCPCloseWaitTimeout},
		{"conntrack-udp-timeout", c.Conntrack.UDPTimeout},
		{"conntrack-udp-timeout-stream", c.Conntrack.UDPStreamTimeout},
	} {
		if d.val < 0 {
			r.invalid(&errs, d.flag, "must not be negative, got %s", d.val)
		}
	}

	switch c.LoadBalancing {
	case LoadBalancingRandom, LoadBalancingRoundRobin:
	default:
		r.invalid(&errs, "load-balancing", "%q: want %q or %q", c.LoadBalancing, LoadBalancingRandom, LoadBalancingRoundRobin)
	}
	if !tableNameRE.MatchString(c.TableName) {
		r.invalid(&errs, "nftables-table", "%q: want a letter, then letters, digits, '-' or '_', at most 64 characters", c.TableName)
	}
	return errs
}

// bindAddress checks a server address and gives a bare IP the default port,
// as kube-proxy does. Like kube-proxy, the host must be an IP literal, not a
// name. "" stays "" (server off), as does port 0.
func bindAddress(addr string, defaultPort int) (string, error) {
	if addr == "" {
		return "", nil
	}
	if netutils.ParseIPSloppy(addr) != nil {
		return net.JoinHostPort(addr, strconv.Itoa(defaultPort)), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q: want IP:port or IP", addr)
	}
	if netutils.ParseIPSloppy(host) == nil {
		return "", fmt.Errorf("%q: %q is not an IP address", addr, host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", fmt.Errorf("%q: %q is not a port number", addr, port)
	}
	return addr, nil
}

// splitList splits a comma-separated list, trimming spaces; "" is no item.
func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return trimAll(strings.Split(s, ","))
}

func trimAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.TrimSpace(s)
	}
	return out
}
