package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// haproxyConfig is the control-plane endpoint of an HA topology, in the shape of
// kubeadm's HA guide: TCP passthrough (clients keep verifying kube-apiserver's own
// certificate and presenting theirs), each kube-apiserver checked through /readyz every
// second and taken out after two failures. Sessions to a server marked down are cut,
// so watches on a hung kube-apiserver reconnect to a live one instead of waiting for a
// timeout. Long client and server timeouts: watches stay open for minutes.
//
// When no kube-apiserver is ready at all (etcd lost its quorum, or a frozen member makes
// every /readyz time out for a while), a second backend takes the traffic: the same
// servers checked only for a TLS handshake, so clients get kube-apiserver's own answer (a
// timeout naming etcd, and the reads it can still serve, such as the etcdmembers view
// saying the quorum is lost) instead of a connection closed on them, and a frozen host,
// which accepts connections but never completes a handshake, still gets none.
func (p *plan) haproxyConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by kubeparts up: the control-plane endpoint of this cluster.
global
    log stdout format raw local0 notice
    maxconn 4096

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 3s
    timeout client 1h
    timeout server 1h
    timeout check 2s

frontend kube-apiserver
    bind 0.0.0.0:%d
    use_backend kube-apiservers-unready if { nbsrv(kube-apiservers) eq 0 }
    default_backend kube-apiservers

backend kube-apiservers
    option httpchk GET /readyz
    http-check expect status 200
    balance roundrobin
    default-server check check-ssl verify none inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
`, p.ports.APIServer)
	for _, h := range p.topo.controlPlanes {
		fmt.Fprintf(&b, "    server %s %s:%d\n", h.name, h.ip, p.ports.APIServer)
	}
	b.WriteString(`
backend kube-apiservers-unready
    option tcp-check
    tcp-check connect ssl
    balance roundrobin
    default-server check verify none inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
`)
	for _, h := range p.topo.controlPlanes {
		fmt.Fprintf(&b, "    server %s %s:%d\n", h.name, h.ip, p.ports.APIServer)
	}
	return b.String()
}

// startLoadBalancer runs HAProxy (Debian's) on the machine at the cluster's API port,
// and waits until it serves /readyz: every kubeconfig names that endpoint.
func (c *Cluster) startLoadBalancer(ctx context.Context) error {
	p := c.plan
	cfg := filepath.Join(p.DataDir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(p.haproxyConfig()), 0o644); err != nil {
		return err
	}
	// -db: in the foreground, so `up` supervises it like the rest.
	proc, err := c.run("haproxy", p.binaries["haproxy"], []string{"-db", "-f", cfg}, 5*time.Second)
	if err != nil {
		return err
	}
	proc.health = fmt.Sprintf("https://127.0.0.1:%d/readyz", p.ports.APIServer)
	return c.waitHealthy(ctx, []*process{proc}, 30*time.Second)
}
