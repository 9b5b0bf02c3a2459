package proxy

import (
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestStaleUDPFlows: which entries go when a UDP port's endpoints change,
// as kube-proxy clears them (a gone endpoint, a changed target port, a port
// that gets its first endpoint) and which stay (TCP, nothing changed).
func TestStaleUDPFlows(t *testing.T) {
	sp := &servicePort{port: 53}
	rules := func(udp bool, nodePort int32, eps ...endpoint) *serviceRules {
		return &serviceRules{udp: udp, nodePort: nodePort, destinations: []string{"10.96.0.10", "192.0.2.5"}, endpoints: eps, hasEndpoints: len(eps) > 0}
	}
	a, b := endpoint{ip: "10.244.0.2", port: 53}, endpoint{ip: "10.244.0.3", port: 53}
	aMoved := endpoint{ip: "10.244.0.2", port: 5353}
	for _, tc := range []struct {
		name     string
		old, cur *serviceRules
		want     []conntrackFlow
	}{
		{"endpoint gone", rules(true, 30053, a, b), rules(true, 30053, b), []conntrackFlow{
			{dst: "10.96.0.10", port: 53, replyIP: a.ip, replyPort: 53},
			{dst: "192.0.2.5", port: 53, replyIP: a.ip, replyPort: 53},
			{nodePort: true, port: 30053, replyIP: a.ip, replyPort: 53},
		}},
		{"target port changed", rules(true, 0, a), rules(true, 0, aMoved), []conntrackFlow{
			{dst: "10.96.0.10", port: 53, replyIP: a.ip, replyPort: 53},
			{dst: "192.0.2.5", port: 53, replyIP: a.ip, replyPort: 53},
		}},
		{"first endpoint", rules(true, 0), rules(true, 0, a), []conntrackFlow{
			{dst: "10.96.0.10", port: 53}, {dst: "192.0.2.5", port: 53},
		}},
		{"Service port deleted", rules(true, 0, a), nil, []conntrackFlow{
			{dst: "10.96.0.10", port: 53, replyIP: a.ip, replyPort: 53},
			{dst: "192.0.2.5", port: 53, replyIP: a.ip, replyPort: 53},
		}},
		{"unchanged", rules(true, 0, a, b), rules(true, 0, b, a), nil},
		{"TCP", rules(false, 0, a, b), rules(false, 0, b), nil},
		{"new port", nil, rules(true, 0, a), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := staleUDPFlows(tc.old, tc.cur, sp); !slices.Equal(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestConntrackFlowMatch(t *testing.T) {
	flow := &netlink.ConntrackFlow{
		Forward: netlink.IPTuple{Protocol: unix.IPPROTO_UDP, SrcIP: net.ParseIP("10.244.1.9"), SrcPort: 40000, DstIP: net.ParseIP("10.96.0.10"), DstPort: 53},
		Reverse: netlink.IPTuple{Protocol: unix.IPPROTO_UDP, SrcIP: net.ParseIP("10.244.0.2"), SrcPort: 53, DstIP: net.ParseIP("10.244.1.9"), DstPort: 40000},
	}
	for _, tc := range []struct {
		f    conntrackFlow
		want bool
	}{
		{conntrackFlow{dst: "10.96.0.10", port: 53, replyIP: "10.244.0.2", replyPort: 53}, true},
		{conntrackFlow{dst: "10.96.0.10", port: 53}, true},
		{conntrackFlow{nodePort: true, port: 53, replyIP: "10.244.0.2", replyPort: 53}, true},
		{conntrackFlow{dst: "10.96.0.10", port: 53, replyIP: "10.244.0.2", replyPort: 5353}, false}, // another target port
		{conntrackFlow{dst: "10.96.0.10", port: 53, replyIP: "10.244.0.3", replyPort: 53}, false},
		{conntrackFlow{dst: "10.96.0.11", port: 53}, false},
		{conntrackFlow{dst: "10.96.0.10", port: 54}, false},
	} {
		if got := tc.f.MatchConntrackFlow(flow); got != tc.want {
			t.Errorf("%+v: match %v, want %v", tc.f, got, tc.want)
		}
	}
	tcp := *flow
	tcp.Forward.Protocol = unix.IPPROTO_TCP
	if (conntrackFlow{dst: "10.96.0.10", port: 53}).MatchConntrackFlow(&tcp) {
		t.Error("a TCP flow matched")
	}
}
