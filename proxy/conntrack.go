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

// conntrackFlow names UDP flows to delete: to destination (an IP, or any
// local address when nodePort is set) and answered by replySrc.
type conntrackFlow struct {
	dst      string
	port     int32
	nodePort bool
	replySrc string // "" for any
}

// staleUDPFlows works out which UDP conntrack entries outlived their
// endpoints. UDP has no connection to close: without this, a client that
// keeps its source port (a DNS resolver) keeps sending to a pod that is gone
// until the entry times out — the classic DNS black hole after a CoreDNS
// restart. Entries of a port that just got its first endpoint go too: they
// were made while nothing answered and would keep bypassing the new rules.
func staleUDPFlows(old, cur *serviceRules, sp *servicePort) []conntrackFlow {
	if (old != nil && !old.udp) || (cur != nil && !cur.udp) || old == nil {
		return nil
	}
	var flows []conntrackFlow
	kept := map[string]bool{}
	if cur != nil {
		for _, ip := range cur.endpointIPs {
			kept[ip] = true
		}
	}
	for _, ip := range old.endpointIPs {
		if kept[ip] {
			continue
		}
		for _, dst := range old.destinations {
			flows = append(flows, conntrackFlow{dst: dst, port: sp.port, replySrc: ip})
		}
		if old.nodePort != 0 {
			flows = append(flows, conntrackFlow{nodePort: true, port: old.nodePort, replySrc: ip})
		}
	}
	if cur != nil && !old.hasEndpoints && cur.hasEndpoints {
		for _, dst := range cur.destinations {
			flows = append(flows, conntrackFlow{dst: dst, port: sp.port})
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
	var filters []netlink.CustomConntrackFilter
	for _, f := range flows {
		filter := &netlink.ConntrackFilter{}
		if err := filter.AddProtocol(unix.IPPROTO_UDP); err != nil {
			return 0, err
		}
		if f.nodePort {
			if err := filter.AddPort(netlink.ConntrackOrigDstPort, uint16(f.port)); err != nil {
				return 0, err
			}
		} else {
			if err := filter.AddIP(netlink.ConntrackOrigDstIP, net.ParseIP(f.dst)); err != nil {
				return 0, err
			}
			if err := filter.AddPort(netlink.ConntrackOrigDstPort, uint16(f.port)); err != nil {
				return 0, err
			}
		}
		if f.replySrc != "" {
			if err := filter.AddIP(netlink.ConntrackReplySrcIP, net.ParseIP(f.replySrc)); err != nil {
				return 0, err
			}
		}
		filters = append(filters, filter)
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
