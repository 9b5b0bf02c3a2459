package proxy

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/kubeparts/kubeparts/proxy/config"
)

// conntrackFlow names UDP flows to delete: to dst:port (any local address
// when nodePort is set), answered by the endpoint replyIP:replyPort (any when
// replyIP is empty).
type conntrackFlow struct {
	dst       string
	port      int32
	nodePort  bool
	replyIP   string
	replyPort int32
}

// MatchConntrackFlow makes conntrackFlow a netlink filter. netlink's own
// filter cannot match the reply's source port, which a changed target port
// (same pod, other port) needs.
func (f conntrackFlow) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.Forward.Protocol != unix.IPPROTO_UDP || flow.Forward.DstPort != uint16(f.port) {
		return false
	}
	if !f.nodePort && !flow.Forward.DstIP.Equal(net.ParseIP(f.dst)) {
		return false
	}
	if f.replyIP == "" {
		return true
	}
	return flow.Reverse.SrcIP.Equal(net.ParseIP(f.replyIP)) && flow.Reverse.SrcPort == uint16(f.replyPort)
}

// staleUDPFlows works out which UDP conntrack entries outlived their
// endpoints. UDP has no connection to close: without this, a client that
// keeps its source port (a DNS resolver) keeps sending to a pod that is gone
// (or to a port it no longer serves) until the entry times out: the classic
// DNS black hole after a CoreDNS restart. Entries of a port that just got
// its first endpoint go too: they were made while nothing answered and would
// keep bypassing the new rules.
func staleUDPFlows(old, cur *serviceRules, sp *servicePort) []conntrackFlow {
	if old == nil || !old.udp || (cur != nil && !cur.udp) {
		return nil
	}
	var flows []conntrackFlow
	kept := map[string]bool{}
	if cur != nil {
		for _, e := range cur.endpoints {
			kept[e.String()] = true
		}
	}
	for _, e := range old.endpoints {
		if kept[e.String()] {
			continue
		}
		for _, dst := range old.destinations {
			flows = append(flows, conntrackFlow{dst: dst, port: sp.port, replyIP: e.ip, replyPort: e.port})
		}
		if old.nodePort != 0 {
			flows = append(flows, conntrackFlow{nodePort: true, port: old.nodePort, replyIP: e.ip, replyPort: e.port})
		}
	}
	if cur != nil && !old.hasEndpoints && cur.hasEndpoints {
		for _, dst := range cur.destinations {
			flows = append(flows, conntrackFlow{dst: dst, port: sp.port})
		}
		if cur.nodePort != 0 {
			flows = append(flows, conntrackFlow{nodePort: true, port: cur.nodePort})
		}
	}
	return flows
}

// deleteFlows removes the entries through netlink, as kube-proxy does; the
// proxy needs no conntrack binary.
func deleteFlows(flows []conntrackFlow) (uint, error) {
	if len(flows) == 0 {
		return 0, nil
	}
	filters := make([]netlink.CustomConntrackFilter, len(flows))
	for i, f := range flows {
		filters[i] = f
	}
	return netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...)
}

// applyConntrackSettings sets the conntrack sysctls as kube-proxy does at
// start: the table size only ever grows, timeouts are set when configured.
// In a network namespace other than the first some are read-only; that is
// logged, not fatal (the host's settings apply there).
func applyConntrackSettings(c config.Conntrack) {
	set := func(name string, value int64, onlyGrow bool) {
		path := filepath.Join("/proc/sys/net/netfilter", name)
		if onlyGrow {
			if cur, err := os.ReadFile(path); err == nil {
				if v, err := strconv.ParseInt(strings.TrimSpace(string(cur)), 10, 64); err == nil && v >= value {
					return
				}
			}
		}
		if err := os.WriteFile(path, []byte(strconv.FormatInt(value, 10)), 0o644); err != nil {
			klog.InfoS("Could not set conntrack sysctl", "sysctl", "net/netfilter/"+name, "value", value, "err", err)
		}
	}
	if c.MaxPerCore > 0 {
		limit := int64(c.MaxPerCore) * int64(runtime.NumCPU())
		if int64(c.Min) > limit {
			limit = int64(c.Min)
		}
		set("nf_conntrack_max", limit, true)
	}
	for name, d := range map[string]int64{
		"nf_conntrack_tcp_timeout_established": int64(c.TCPEstablishedTimeout.Seconds()),
		"nf_conntrack_tcp_timeout_close_wait":  int64(c.TCPCloseWaitTimeout.Seconds()),
		"nf_conntrack_udp_timeout":             int64(c.UDPTimeout.Seconds()),
		"nf_conntrack_udp_timeout_stream":      int64(c.UDPStreamTimeout.Seconds()),
	} {
		if d > 0 {
			set(name, d, false)
		}
	}
	if c.TCPBeLiberal {
		set("nf_conntrack_tcp_be_liberal", 1, false)
	}
}

// ensureBridgeNetfilter turns on netfilter for bridged IPv4 traffic: a pod
// reaching a Service whose endpoint sits on the same bridge gets its reply
// switched, not routed, and without this the reply is never un-DNATed.
// kubeadm demands the same setting of every node.
func ensureBridgeNetfilter() {
	const path = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	cur, err := os.ReadFile(path)
	if err != nil {
		klog.InfoS("Bridge netfilter is not available (br_netfilter not loaded): pods may not reach Services backed by pods on the same bridge")
		return
	}
	if strings.TrimSpace(string(cur)) == "1" {
		return
	}
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		klog.InfoS("Could not enable bridge netfilter", "sysctl", "net/bridge/bridge-nf-call-iptables", "err", err)
	}
}
