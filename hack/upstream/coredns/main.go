// Command coredns is CoreDNS v1.15.0 with only the plugins a kubeadm Corefile uses
// (plus log and hosts, handy when debugging cluster DNS). It is the binary of the local
// cluster's CoreDNS image (internal/localcluster/dns.go), built by hack/upstream/build.sh.
//
// CoreDNS registers plugins through init functions; core/plugin/zplugin.go imports every
// plugin of plugin.cfg, this file imports a subset. The order in which plugins run is not
// the import order but the fixed directive list of core/dnsserver/zdirectives.go.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver" // the "dns" server type
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics" // the "prometheus" directive
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}
