package localcluster

import (
	"net"
	"reflect"
	"testing"
)

// Lines as `iptables -t nat -S POSTROUTING` prints them with the bridge
// plugin's rules of two clusters, and others'.
const postrouting = `-P POSTROUTING ACCEPT
-A POSTROUTING -j NETAVARK-HOSTPORT-MASQ
-A POSTROUTING -s 10.208.0.2/32 -m comment --comment "name: \"kubeparts\" id: \"e8b37153\"" -j CNI-7a8bcccf3860ce720ae64810
-A POSTROUTING -s 10.208.1.5/32 -m comment --comment "name: \"kubeparts\" id: \"37a731d4\"" -j CNI-e0ebfb89338d0458f39e9803
-A POSTROUTING -s 10.240.31.2/32 -m comment --comment "name: \"kubeparts\" id: \"9506a43c\"" -j CNI-13bd493427784979837aeee5
-A POSTROUTING -s 10.208.0.3/32 -m comment --comment "name: \"other\" id: \"5678de88\"" -j CNI-d91edf7bb338d5de609cf399
-A POSTROUTING -s 10.208.0.0/16 -j MASQUERADE
`

func TestStaleMasquerade(t *testing.T) {
	_, cidr, _ := net.ParseCIDR("10.208.0.0/16")
	specs, chains := staleMasquerade(postrouting, cidr)
	wantChains := []string{"CNI-7a8bcccf3860ce720ae64810", "CNI-e0ebfb89338d0458f39e9803"}
	if !reflect.DeepEqual(chains, wantChains) {
		t.Errorf("chains %v, want %v (this cluster's pod CIDR, the bridge plugin's network only)", chains, wantChains)
	}
	want := []string{"-s", "10.208.0.2/32", "-m", "comment", "--comment", `name: "kubeparts" id: "e8b37153"`, "-j", "CNI-7a8bcccf3860ce720ae64810"}
	if len(specs) == 0 || !reflect.DeepEqual(specs[0], want) {
		t.Errorf("first rule %q, want %q (arguments for iptables -D)", specs, want)
	}
	_, none, _ := net.ParseCIDR("10.211.0.0/16")
	if specs, _ := staleMasquerade(postrouting, none); len(specs) != 0 {
		t.Errorf("rules outside the CIDR picked: %v", specs)
	}
}
