package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

const testHostname = " Node-A.Example "

// kubeadmConfig is the KubeProxyConfiguration `kubeadm init` writes into the
// kube-proxy ConfigMap (key config.conf), with podSubnet 10.244.0.0/16 and the
// proxy mode set to nftables: every field spelled out, mostly zero.
const kubeadmConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: 10.244.0.0/16
configSyncPeriod: 0s
conntrack:
  maxPerCore: null
  min: null
  tcpBeLiberal: false
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 0s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
kind: KubeProxyConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
metricsBindAddress: ""
mode: nftables
nftables:
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
`

// header starts every hand-written config file below.
const header = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"

// complete parses args as a command line and, when file is not empty, loads
// it as the --config file.
func complete(t *testing.T, file string, args ...string) (*Config, error) {
	t.Helper()
	o := NewOptions()
	o.hostname = func() (string, error) { return testHostname, nil }
	fs := pflag.NewFlagSet("kubeparts-proxy", pflag.ContinueOnError)
	fs.SetOutput(testWriter{t})
	o.AddFlags(fs)
	if file != "" {
		path := filepath.Join(t.TempDir(), "config.conf")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config=" + path}, args...)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	return o.Complete(fs)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func mustCIDRs(t *testing.T, ss ...string) []*net.IPNet {
	t.Helper()
	var out []*net.IPNet
	for _, s := range ss {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// wantDefaults is kube-proxy's nftables-mode defaults on the test host.
func wantDefaults() Config {
	return Config{
		ClientQPS:          5,
		ClientBurst:        10,
		ContentType:        "application/vnd.kubernetes.protobuf",
		HostnameOverride:   "node-a.example",
		NodePortAddresses:  []string{"primary"},
		MasqueradeBit:      14,
		MinSyncPeriod:      time.Second,
		SyncPeriod:         30 * time.Second,
		MetricsBindAddress: "127.0.0.1:10249",
		HealthzBindAddress: "0.0.0.0:10256",
		LoadBalancing:      "random",
		TableName:          "kubeparts-proxy",
		Conntrack: Conntrack{
			MaxPerCore:            32768,
			Min:                   131072,
			TCPEstablishedTimeout: 24 * time.Hour,
			TCPCloseWaitTimeout:   time.Hour,
		},
	}
}

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		args []string
		want func(*Config)
	}{
		{name: "no flags, no file"},
		{name: "minimal file", file: header},
		{name: "mode left empty", file: header + "mode: \"\"\n"},
		{
			name: "kubeadm ConfigMap",
			file: kubeadmConfig,
			args: []string{"--hostname-override=worker-1"},
			want: func(c *Config) {
				c.Kubeconfig = "/var/lib/kube-proxy/kubeconfig.conf"
				c.HostnameOverride = "worker-1"
			},
		},
		{
			name: "kubeadm ConfigMap, IPv6 single-stack",
			file: strings.NewReplacer("bindAddress: 0.0.0.0", "bindAddress: '::'",
				"clusterCIDR: 10.244.0.0/16", "clusterCIDR: fd00:10:244::/56").Replace(kubeadmConfig),
			want: func(c *Config) {
				c.Kubeconfig = "/var/lib/kube-proxy/kubeconfig.conf"
				c.MetricsBindAddress = "[::1]:10249"
				c.HealthzBindAddress = "[::]:10256"
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := complete(t, tc.file, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			want := wantDefaults()
			if strings.Contains(tc.file, "clusterCIDR: 10.244.0.0/16") {
				want.ClusterCIDRs = mustCIDRs(t, "10.244.0.0/16")
			}
			if strings.Contains(tc.file, "clusterCIDR: fd00:10:244::/56") {
				want.ClusterCIDRs = mustCIDRs(t, "fd00:10:244::/56")
			}
			if tc.want != nil {
				tc.want(&want)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("got  %+v\nwant %+v", *got, want)
			}
		})
	}
}

// The flags' own defaults are what --help shows: kube-proxy's.
func TestFlagDefaults(t *testing.T) {
	fs := pflag.NewFlagSet("kubeparts-proxy", pflag.ContinueOnError)
	NewOptions().AddFlags(fs)
	for flag, want := range map[string]string{
		"config":                            "",
		"kubeconfig":                        "",
		"master":                            "",
		"hostname-override":                 "",
		"cluster-cidr":                      "",
		"nodeport-addresses":                "[primary]",
		"masquerade-all":                    "false",
		"profiling":                         "false",
		"iptables-masquerade-bit":           "14",
		"min-sync-period":                   "1s",
		"sync-period":                       "30s",
		"iptables-min-sync-period":          "1s",
		"iptables-sync-period":              "30s",
		"metrics-bind-address":              "127.0.0.1:10249",
		"healthz-bind-address":              "0.0.0.0:10256",
		"kube-api-qps":                      "5",
		"kube-api-burst":                    "10",
		"kube-api-content-type":             "application/vnd.kubernetes.protobuf",
		"conntrack-max-per-core":            "32768",
		"conntrack-min":                     "131072",
		"conntrack-tcp-timeout-established": "24h0m0s",
		"conntrack-tcp-timeout-close-wait":  "1h0m0s",
		"conntrack-udp-timeout":             "0s",
		"conntrack-udp-timeout-stream":      "0s",
		"conntrack-tcp-be-liberal":          "false",
		"cleanup":                           "false",
		"proxy-mode":                        "nftables",
		"load-balancing":                    "random",
		"nftables-table":                    "kubeparts-proxy",
	} {
		f := fs.Lookup(flag)
		if f == nil {
			t.Errorf("--%s is not registered", flag)
			continue
		}
		if f.DefValue != want {
			t.Errorf("--%s defaults to %q, want %q", flag, f.DefValue, want)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want func(*testing.T, *Config)
	}{
		{
			name: "every flag",
			args: []string{
				"--kubeconfig=/k", "--master=https://10.0.0.1:6443", "--kube-api-qps=50", "--kube-api-burst=100",
				"--kube-api-content-type=application/json", "--hostname-override=Node-B",
				"--cluster-cidr=10.244.0.0/16, fd00:10:244::/56", "--nodeport-addresses=192.168.0.0/16,fd00::/64",
				"--masquerade-all", "--iptables-masquerade-bit=3", "--min-sync-period=2s", "--sync-period=1m",
				"--metrics-bind-address=0.0.0.0:9000", "--healthz-bind-address=[::]:9001",
				"--conntrack-max-per-core=0", "--conntrack-min=7", "--conntrack-tcp-timeout-established=1h",
				"--conntrack-tcp-timeout-close-wait=5m", "--conntrack-udp-timeout=30s", "--conntrack-udp-timeout-stream=2m",
				"--conntrack-tcp-be-liberal", "--cleanup", "--proxy-mode=nftables", "--load-balancing=round-robin",
				"--nftables-table=my_table-2", "--profiling",
			},
			want: func(t *testing.T, c *Config) {
				want := Config{
					Kubeconfig: "/k", Master: "https://10.0.0.1:6443", ClientQPS: 50, ClientBurst: 100,
					ContentType: "application/json", HostnameOverride: "node-b",
					ClusterCIDRs:      mustCIDRs(t, "10.244.0.0/16", "fd00:10:244::/56"),
					NodePortAddresses: []string{"192.168.0.0/16", "fd00::/64"},
					MasqueradeAll:     true, MasqueradeBit: 3, MinSyncPeriod: 2 * time.Second, SyncPeriod: time.Minute,
					MetricsBindAddress: "0.0.0.0:9000", HealthzBindAddress: "[::]:9001", EnableProfiling: true,
					LoadBalancing: "round-robin", TableName: "my_table-2",
					Conntrack: Conntrack{Min: 7, TCPEstablishedTimeout: time.Hour, TCPCloseWaitTimeout: 5 * time.Minute,
						UDPTimeout: 30 * time.Second, UDPStreamTimeout: 2 * time.Minute, TCPBeLiberal: true},
					Cleanup: true,
				}
				if !reflect.DeepEqual(*c, want) {
					t.Errorf("got  %+v\nwant %+v", *c, want)
				}
			},
		},
		{
			name: "kube-proxy's sync period names",
			args: []string{"--iptables-min-sync-period=0s", "--iptables-sync-period=10s"},
			want: func(t *testing.T, c *Config) {
				if c.MinSyncPeriod != 0 || c.SyncPeriod != 10*time.Second {
					t.Errorf("sync periods %s, %s; want 0s, 10s", c.MinSyncPeriod, c.SyncPeriod)
				}
			},
		},
		{
			name: "bare IPs get the default ports",
			args: []string{"--metrics-bind-address=::1", "--healthz-bind-address=10.1.2.3"},
			want: func(t *testing.T, c *Config) {
				if c.MetricsBindAddress != "[::1]:10249" || c.HealthzBindAddress != "10.1.2.3:10256" {
					t.Errorf("bind addresses %q, %q", c.MetricsBindAddress, c.HealthzBindAddress)
				}
			},
		},
		{
			name: "empty bind addresses disable the servers",
			args: []string{"--metrics-bind-address=", "--healthz-bind-address="},
			want: func(t *testing.T, c *Config) {
				if c.MetricsBindAddress != "" || c.HealthzBindAddress != "" {
					t.Errorf("bind addresses %q, %q; want both empty", c.MetricsBindAddress, c.HealthzBindAddress)
				}
			},
		},
		{
			name: "empty hostname-override means the host name",
			args: []string{"--hostname-override="},
			want: func(t *testing.T, c *Config) {
				if c.HostnameOverride != "node-a.example" {
					t.Errorf("HostnameOverride %q", c.HostnameOverride)
				}
			},
		},
		{
			name: "empty cluster-cidr and nodeport-addresses",
			args: []string{"--cluster-cidr=", "--nodeport-addresses="},
			want: func(t *testing.T, c *Config) {
				if c.ClusterCIDRs != nil || !reflect.DeepEqual(c.NodePortAddresses, []string{"primary"}) {
					t.Errorf("ClusterCIDRs %v, NodePortAddresses %v", c.ClusterCIDRs, c.NodePortAddresses)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := complete(t, "", tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			tc.want(t, c)
		})
	}
}

func TestFlagsOverrideConfigFile(t *testing.T) {
	const file = header + `clientConnection:
  kubeconfig: /file/kubeconfig
  qps: 20
  burst: 30
  contentType: application/json
hostnameOverride: file-node
clusterCIDR: 10.0.0.0/8
nodePortAddresses: [192.168.0.0/16]
metricsBindAddress: 127.0.0.1:1111
healthzBindAddress: 0.0.0.0:2222
mode: nftables
nftables:
  masqueradeAll: true
  masqueradeBit: 5
  minSyncPeriod: 3s
  syncPeriod: 40s
conntrack:
  maxPerCore: 1
  min: 2
  tcpEstablishedTimeout: 3s
  tcpCloseWaitTimeout: 4s
  udpTimeout: 5s
  udpStreamTimeout: 6s
  tcpBeLiberal: true
logging:
  verbosity: 4
`
	fromFile := Config{
		Kubeconfig: "/file/kubeconfig", ClientQPS: 20, ClientBurst: 30, ContentType: "application/json",
		HostnameOverride: "file-node", ClusterCIDRs: mustCIDRs(t, "10.0.0.0/8"),
		NodePortAddresses: []string{"192.168.0.0/16"}, MasqueradeAll: true, MasqueradeBit: 5,
		MinSyncPeriod: 3 * time.Second, SyncPeriod: 40 * time.Second,
		MetricsBindAddress: "127.0.0.1:1111", HealthzBindAddress: "0.0.0.0:2222",
		LoadBalancing: "random", TableName: "kubeparts-proxy",
		Conntrack: Conntrack{MaxPerCore: 1, Min: 2, TCPEstablishedTimeout: 3 * time.Second,
			TCPCloseWaitTimeout: 4 * time.Second, UDPTimeout: 5 * time.Second, UDPStreamTimeout: 6 * time.Second,
			TCPBeLiberal: true},
		Verbosity: 4,
	}
	for _, tc := range []struct {
		name string
		args []string
		want func(*Config)
	}{
		{name: "file alone"},
		{
			name: "flags given win",
			args: []string{"--kubeconfig=/flag", "--kube-api-qps=1", "--hostname-override=flag-node",
				"--cluster-cidr=172.16.0.0/12", "--nodeport-addresses=primary", "--masquerade-all=false",
				"--iptables-masquerade-bit=9", "--sync-period=50s", "--conntrack-min=0",
				"--conntrack-tcp-be-liberal=false", "--metrics-bind-address=0.0.0.0"},
			want: func(c *Config) {
				c.Kubeconfig = "/flag"
				c.ClientQPS = 1
				c.HostnameOverride = "flag-node"
				c.ClusterCIDRs = mustCIDRs(t, "172.16.0.0/12")
				c.NodePortAddresses = []string{"primary"}
				c.MasqueradeAll = false
				c.MasqueradeBit = 9
				c.SyncPeriod = 50 * time.Second
				c.Conntrack.Min = 0
				c.Conntrack.TCPBeLiberal = false
				c.MetricsBindAddress = "0.0.0.0:10249"
			},
		},
		{
			name: "kube-proxy's flag name over nftables.minSyncPeriod",
			args: []string{"--iptables-min-sync-period=0s"},
			want: func(c *Config) { c.MinSyncPeriod = 0 },
		},
		{
			// kubeadm's DaemonSet passes --hostname-override=$(NODE_NAME).
			name: "empty hostname-override keeps the file's",
			args: []string{"--hostname-override="},
		},
		{
			name: "kubeparts-proxy's own flags",
			args: []string{"--load-balancing=round-robin", "--nftables-table=t", "--cleanup"},
			want: func(c *Config) {
				c.LoadBalancing = "round-robin"
				c.TableName = "t"
				c.Cleanup = true
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := complete(t, file, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			want := fromFile
			if tc.want != nil {
				tc.want(&want)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("got  %+v\nwant %+v", *got, want)
			}
		})
	}

	// The flag's mode replaces the file's before the check.
	if _, err := complete(t, header+"mode: ipvs\n", "--proxy-mode=nftables"); err != nil {
		t.Errorf("--proxy-mode=nftables over mode: ipvs: %v", err)
	}
}

// Each invalid value is reported under the flag or file field that gave it.
func TestValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string // empty: no --config
		args []string
		want []string // substrings of the error
	}{
		{name: "min-sync-period above sync-period", args: []string{"--min-sync-period=1m"},
			want: []string{"--min-sync-period: 1m0s exceeds --sync-period (30s)"}},
		{name: "min-sync-period above sync-period, file",
			file: header + "nftables: {minSyncPeriod: 1m, syncPeriod: 10s}\n",
			want: []string{"nftables.minSyncPeriod: 1m0s exceeds nftables.syncPeriod (10s)"}},
		{name: "min-sync-period negative", args: []string{"--iptables-min-sync-period=-1s"},
			want: []string{"--iptables-min-sync-period: must not be negative"}},
		{name: "sync-period zero", args: []string{"--sync-period=0"},
			want: []string{"--sync-period: must be greater than 0"}},
		{name: "sync-period negative, kube-proxy's name", args: []string{"--iptables-sync-period=-5s"},
			want: []string{"--iptables-sync-period: must be greater than 0"}},
		{name: "sync-period negative, file", file: header + "nftables: {syncPeriod: -1s}\n",
			want: []string{"nftables.syncPeriod: must be greater than 0"}},
		{name: "masquerade bit too high", args: []string{"--iptables-masquerade-bit=32"},
			want: []string{"--iptables-masquerade-bit: must be within 0..31, got 32"}},
		{name: "masquerade bit negative", args: []string{"--iptables-masquerade-bit=-1"},
			want: []string{"--iptables-masquerade-bit: must be within 0..31"}},
		{name: "masquerade bit, file", file: header + "nftables: {masqueradeBit: 40}\n",
			want: []string{"nftables.masqueradeBit: must be within 0..31"}},
		{name: "cluster-cidr not a CIDR", args: []string{"--cluster-cidr=10.0.0.0/8,10.1.2.3"},
			want: []string{`--cluster-cidr: "10.1.2.3" is not a CIDR`}},
		{name: "cluster-cidr trailing comma", args: []string{"--cluster-cidr=10.0.0.0/8,"},
			want: []string{`--cluster-cidr: "" is not a CIDR`}},
		{name: "cluster-cidr two IPv4", args: []string{"--cluster-cidr=10.0.0.0/8,172.16.0.0/12"},
			want: []string{"--cluster-cidr: two CIDRs must be one IPv4 and one IPv6"}},
		{name: "cluster-cidr three", args: []string{"--cluster-cidr=10.0.0.0/8,fd00::/8,172.16.0.0/12"},
			want: []string{"--cluster-cidr: at most two CIDRs"}},
		{name: "clusterCIDR, file", file: header + "clusterCIDR: 10.0.0.0/33\n",
			want: []string{`clusterCIDR: "10.0.0.0/33" is not a CIDR`}},
		{name: "nodeport-addresses primary mixed", args: []string{"--nodeport-addresses=primary,10.0.0.0/8"},
			want: []string{`--nodeport-addresses: "primary" cannot be mixed with CIDRs`}},
		{name: "nodeport-addresses bad CIDR", args: []string{"--nodeport-addresses=10.0.0.1"},
			want: []string{`--nodeport-addresses: "10.0.0.1" is neither a CIDR nor "primary"`}},
		{name: "nodePortAddresses, file", file: header + "nodePortAddresses: [10.0.0.0/8, primary]\n",
			want: []string{`nodePortAddresses: "primary" cannot be mixed with CIDRs`}},
		{name: "load-balancing", args: []string{"--load-balancing=least-conn"},
			want: []string{`--load-balancing: "least-conn": want "random" or "round-robin"`}},
		{name: "table starts with a digit", args: []string{"--nftables-table=1table"},
			want: []string{`--nftables-table: "1table"`}},
		{name: "table with a dot", args: []string{"--nftables-table=kube.proxy"},
			want: []string{`--nftables-table: "kube.proxy"`}},
		{name: "table empty", args: []string{"--nftables-table="}, want: []string{`--nftables-table: ""`}},
		{name: "table too long", args: []string{"--nftables-table=" + strings.Repeat("a", 65)},
			want: []string{"--nftables-table:"}},
		{name: "conntrack-max-per-core negative", args: []string{"--conntrack-max-per-core=-1"},
			want: []string{"--conntrack-max-per-core: must not be negative"}},
		{name: "conntrack-min negative", args: []string{"--conntrack-min=-1"},
			want: []string{"--conntrack-min: must not be negative"}},
		{name: "conntrack timeouts negative",
			args: []string{"--conntrack-tcp-timeout-established=-1s", "--conntrack-tcp-timeout-close-wait=-1s",
				"--conntrack-udp-timeout=-1s", "--conntrack-udp-timeout-stream=-1s"},
			want: []string{"--conntrack-tcp-timeout-established: must not be negative",
				"--conntrack-tcp-timeout-close-wait: must not be negative",
				"--conntrack-udp-timeout: must not be negative",
				"--conntrack-udp-timeout-stream: must not be negative"}},
		{name: "conntrack negative, file",
			file: header + "conntrack: {maxPerCore: -1, min: -2, tcpEstablishedTimeout: -1s, tcpCloseWaitTimeout: -1s, udpTimeout: -1s, udpStreamTimeout: -1s}\n",
			want: []string{"conntrack.maxPerCore: must not be negative", "conntrack.min: must not be negative",
				"conntrack.tcpEstablishedTimeout: must not be negative", "conntrack.tcpCloseWaitTimeout: must not be negative",
				"conntrack.udpTimeout: must not be negative", "conntrack.udpStreamTimeout: must not be negative"}},
		{name: "metrics bind address with a host name", args: []string{"--metrics-bind-address=localhost:10249"},
			want: []string{`--metrics-bind-address: "localhost:10249": "localhost" is not an IP address`}},
		{name: "metrics bind address bad port", args: []string{"--metrics-bind-address=127.0.0.1:65536"},
			want: []string{`--metrics-bind-address: "127.0.0.1:65536": "65536" is not a port number`}},
		{name: "healthz bind address garbage", args: []string{"--healthz-bind-address=nonsense"},
			want: []string{`--healthz-bind-address: "nonsense": want IP:port or IP`}},
		{name: "healthz bind address, file", file: header + "healthzBindAddress: 0.0.0.0:x\n",
			want: []string{`healthzBindAddress: "0.0.0.0:x"`}},
		{name: "bindAddress not an IP", file: header + "bindAddress: somewhere\n",
			want: []string{`bindAddress: "somewhere" is not an IP address`}},
		{name: "kube-api-burst negative", args: []string{"--kube-api-burst=-1"},
			want: []string{"--kube-api-burst: must not be negative"}},
		{name: "kube-api-burst negative, file", file: header + "clientConnection: {burst: -1}\n",
			want: []string{"clientConnection.burst: must not be negative"}},
		{name: "blank hostname-override", args: []string{"--hostname-override=  "},
			want: []string{`--hostname-override: "  " is blank`}},
		{name: "blank hostnameOverride, file", file: header + "hostnameOverride: ' '\n",
			want: []string{`hostnameOverride: " " is blank`}},
		{name: "every error at once", args: []string{"--sync-period=0", "--load-balancing=x", "--conntrack-min=-1"},
			want: []string{"--sync-period:", "--load-balancing:", "--conntrack-min:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := complete(t, tc.file, tc.args...)
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestStrictDecoding(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		want string
	}{
		{"unknown field", header + "mode: nftables\nproxyMode: nftables\n", `unknown field "proxyMode"`},
		{"unknown nested field", header + "nftables:\n  masqueradeAl: true\n", `unknown field "nftables.masqueradeAl"`},
		{"field with the wrong case", header + "Mode: nftables\n", `unknown field "Mode"`},
		{"duplicate field", header + "mode: nftables\nmode: nftables\n", `"mode" already set`},
		{"wrong type", header + "clusterCIDR: [10.0.0.0/8]\n", "clusterCIDR"},
		{"wrong apiVersion", strings.Replace(header, "v1alpha1", "v1alpha2", 1), "apiVersion/kind"},
		{"wrong kind", strings.Replace(header, "KubeProxyConfiguration", "KubeletConfiguration", 1), "apiVersion/kind"},
		{"no type", "mode: nftables\n", "apiVersion/kind"},
		{"empty file", "\n", "apiVersion/kind"},
		{"not YAML", header + "mode: [\n", "--config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := complete(t, tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}

	t.Run("JSON file", func(t *testing.T) {
		c, err := complete(t, `{"apiVersion":"kubeproxy.config.k8s.io/v1alpha1","kind":"KubeProxyConfiguration","mode":"nftables","nftables":{"syncPeriod":"45s"}}`)
		if err != nil {
			t.Fatal(err)
		}
		if c.SyncPeriod != 45*time.Second {
			t.Errorf("SyncPeriod %s, want 45s", c.SyncPeriod)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		o := NewOptions()
		o.ConfigFile = filepath.Join(t.TempDir(), "absent.conf")
		_, err := o.Complete(nil)
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "--config") {
			t.Fatalf("got %v, want a --config not-exist error", err)
		}
	})
}

func TestModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		args []string
		want string // "" means accepted
	}{
		{name: "nftables flag", args: []string{"--proxy-mode=nftables"}},
		{name: "empty flag", args: []string{"--proxy-mode="}},
		{name: "nftables file", file: header + "mode: nftables\n"},
		{name: "ipvs flag", args: []string{"--proxy-mode=ipvs"},
			want: `--proxy-mode: "ipvs": kubeparts-proxy implements only the nftables mode`},
		{name: "iptables flag", args: []string{"--proxy-mode=iptables"},
			want: `--proxy-mode: "iptables": kubeparts-proxy implements only the nftables mode`},
		{name: "ipvs file", file: header + "mode: ipvs\n",
			want: `mode: "ipvs": kubeparts-proxy implements only the nftables mode`},
		{name: "kernelspace file", file: header + "mode: kernelspace\n",
			want: `mode: "kernelspace": kubeparts-proxy implements only the nftables mode`},
		{name: "upper case", file: header + "mode: NFTables\n",
			want: `mode: "NFTables": kubeparts-proxy implements only the nftables mode`},
		{name: "file ipvs, flag iptables", file: header + "mode: ipvs\n", args: []string{"--proxy-mode=iptables"},
			want: `--proxy-mode: "iptables"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := complete(t, tc.file, tc.args...)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// Fields kube-proxy has and kubeparts-proxy does not implement: accepted at
// kube-proxy's default, an error naming the field otherwise.
func TestUnsupportedFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want string // "" means accepted
	}{
		{"ipvs.scheduler", "ipvs: {scheduler: rr}", "ipvs.scheduler: not supported by kubeparts-proxy (nftables mode only)"},
		{"ipvs.syncPeriod", "ipvs: {syncPeriod: 10s}", "ipvs.syncPeriod: not supported"},
		{"ipvs.minSyncPeriod", "ipvs: {minSyncPeriod: 1s}", "ipvs.minSyncPeriod: not supported"},
		{"ipvs.excludeCIDRs", "ipvs: {excludeCIDRs: [10.0.0.0/8]}", "ipvs.excludeCIDRs: not supported"},
		{"ipvs.excludeCIDRs empty", "ipvs: {excludeCIDRs: []}", ""},
		{"ipvs.strictARP", "ipvs: {strictARP: true}", "ipvs.strictARP: not supported"},
		{"ipvs.tcpTimeout", "ipvs: {tcpTimeout: 1s}", "ipvs.tcpTimeout: not supported"},
		{"ipvs.tcpFinTimeout", "ipvs: {tcpFinTimeout: 1s}", "ipvs.tcpFinTimeout: not supported"},
		{"ipvs.udpTimeout", "ipvs: {udpTimeout: 1s}", "ipvs.udpTimeout: not supported"},
		{"iptables.masqueradeAll", "iptables: {masqueradeAll: true}", "iptables.masqueradeAll: not supported by kubeparts-proxy (nftables mode only; set nftables.masqueradeAll)"},
		{"iptables.masqueradeBit", "iptables: {masqueradeBit: 15}", "iptables.masqueradeBit: not supported"},
		{"iptables.masqueradeBit default", "iptables: {masqueradeBit: 14}", ""},
		{"iptables.syncPeriod", "iptables: {syncPeriod: 10s}", "iptables.syncPeriod: not supported"},
		{"iptables.syncPeriod default", "iptables: {syncPeriod: 30s}", ""},
		{"iptables.minSyncPeriod", "iptables: {minSyncPeriod: 2s}", "iptables.minSyncPeriod: not supported"},
		{"iptables.minSyncPeriod default", "iptables: {minSyncPeriod: 1s}", ""},
		{"iptables.localhostNodePorts", "iptables: {localhostNodePorts: false}", ""},
		{"winkernel.networkName", "winkernel: {networkName: l2bridge}", "winkernel.networkName: not supported"},
		{"winkernel.sourceVip", "winkernel: {sourceVip: 10.0.0.1}", "winkernel.sourceVip: not supported"},
		{"winkernel.enableDSR", "winkernel: {enableDSR: true}", "winkernel.enableDSR: not supported"},
		{"winkernel.rootHnsEndpointName", "winkernel: {rootHnsEndpointName: x}", "winkernel.rootHnsEndpointName: not supported"},
		{"winkernel.forwardHealthCheckVip", "winkernel: {forwardHealthCheckVip: true}", "winkernel.forwardHealthCheckVip: not supported"},
		{"windowsRunAsService", "windowsRunAsService: true", "windowsRunAsService: not supported"},
		{"detectLocalMode NodeCIDR", "detectLocalMode: NodeCIDR", `detectLocalMode: not supported by kubeparts-proxy ("NodeCIDR"; only ClusterCIDR)`},
		{"detectLocalMode BridgeInterface", "detectLocalMode: BridgeInterface", "detectLocalMode: not supported"},
		{"detectLocalMode ClusterCIDR", "detectLocalMode: ClusterCIDR", ""},
		{"detectLocal.bridgeInterface", "detectLocal: {bridgeInterface: cbr0}", "detectLocal.bridgeInterface: not supported"},
		{"detectLocal.interfaceNamePrefix", "detectLocal: {interfaceNamePrefix: veth}", "detectLocal.interfaceNamePrefix: not supported"},
		{"featureGates", "featureGates: {B: true, A: false}", "featureGates: not supported by kubeparts-proxy (it has no feature gates; got A, B)"},
		{"featureGates empty", "featureGates: {}", ""},
		{"oomScoreAdj", "oomScoreAdj: 0", "oomScoreAdj: not supported"},
		{"oomScoreAdj default", "oomScoreAdj: -999", ""},
		{"portRange", "portRange: 30000-32767", "portRange: not supported"},
		{"showHiddenMetricsForVersion", "showHiddenMetricsForVersion: '1.35'", "showHiddenMetricsForVersion: not supported"},
		{"enableProfiling", "enableProfiling: true", ""},
		{"bindAddressHardFail", "bindAddressHardFail: true", "bindAddressHardFail: not supported"},
		{"configSyncPeriod", "configSyncPeriod: 1m", "configSyncPeriod: not supported"},
		{"configSyncPeriod default", "configSyncPeriod: 15m", ""},
		{"bindAddress a real IP", "bindAddress: 192.168.1.10", "bindAddress: not supported"},
		{"bindAddress IPv6 unspecified", "bindAddress: '::'", ""},
		{"clientConnection.acceptContentTypes", "clientConnection: {acceptContentTypes: application/json}", "clientConnection.acceptContentTypes: not supported"},
		{"logging.format", "logging: {format: json}", "logging.format: not supported"},
		{"logging.format text", "logging: {format: text}", ""},
		{"logging.vmodule", "logging: {vmodule: [{filePattern: proxier, verbosity: 4}]}", "logging.vmodule: not supported"},
		{"logging.flushFrequency", "logging: {flushFrequency: 1s}", "logging.flushFrequency: not supported"},
		{"logging.flushFrequency default", "logging: {flushFrequency: 5s}", ""},
		{"logging.flushFrequency default in ns", "logging: {flushFrequency: 5000000000}", ""},
		{"logging.options.text.splitStream", "logging: {options: {text: {splitStream: true}}}", "logging.options.text.splitStream: not supported"},
		{"logging.options.json.infoBufferSize", "logging: {options: {json: {infoBufferSize: 1Mi}}}", "logging.options.json.infoBufferSize: not supported"},
		{"logging.verbosity", "logging: {verbosity: 5}", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := complete(t, header+tc.yaml+"\n")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestHostname(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hostname func() (string, error)
		want     string // "" means an error
	}{
		{"trimmed and lower-cased", func() (string, error) { return "\tMy-Host\n", nil }, "my-host"},
		{"lookup fails", func() (string, error) { return "", errors.New("boom") }, ""},
		{"empty", func() (string, error) { return " ", nil }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			o.hostname = tc.hostname
			c, err := o.Complete(nil)
			switch {
			case tc.want == "" && (err == nil || !strings.Contains(err.Error(), "--hostname-override")):
				t.Fatalf("got %v, want an error naming --hostname-override", err)
			case tc.want != "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && c.HostnameOverride != tc.want:
				t.Errorf("HostnameOverride %q, want %q", c.HostnameOverride, tc.want)
			}
		})
	}
}
