package podcri

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func dnsPod(policy corev1.DNSPolicy, hostNetwork bool, cfg *corev1.PodDNSConfig) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1"},
		Spec: corev1.PodSpec{DNSPolicy: policy, HostNetwork: hostNetwork, DNSConfig: cfg}}
}

// The kubelet's resolver per dnsPolicy, PodConfig merged in, limits applied.
func TestDNSConfig(t *testing.T) {
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("# host\nnameserver 192.0.2.53\nsearch old.example\nsearch corp.example. .\noptions rotate timeout:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cluster := DNS{ClusterDNS: []string{"10.96.0.10"}, ClusterDomain: "cluster.local", ResolvConf: resolv}
	noCluster := DNS{ClusterDomain: "cluster.local", ResolvConf: resolv}
	clusterSearch := "shop.svc.cluster.local svc.cluster.local cluster.local corp.example"
	for _, tc := range []struct {
		name       string
		dns        DNS
		pod        *corev1.Pod
		want       string // servers | searches | options
		wantEvents string
	}{
		{"ClusterFirst: the cluster's server and domains, then the node's search paths", cluster, dnsPod(corev1.DNSClusterFirst, false, nil),
			"10.96.0.10 | " + clusterSearch + " | ndots:5", ""},
		{"ClusterFirst on the host network: the node's", cluster, dnsPod(corev1.DNSClusterFirst, true, nil),
			"192.0.2.53 | corp.example | rotate timeout:2", ""},
		{"ClusterFirstWithHostNet: the cluster's", cluster, dnsPod(corev1.DNSClusterFirstWithHostNet, true, nil),
			"10.96.0.10 | " + clusterSearch + " | ndots:5", ""},
		{"Default: the node's", cluster, dnsPod(corev1.DNSDefault, false, nil), "192.0.2.53 | corp.example | rotate timeout:2", ""},
		{"no cluster DNS: ClusterFirst falls back to Default, with a warning", noCluster, dnsPod(corev1.DNSClusterFirst, false, nil),
			"192.0.2.53 | corp.example | rotate timeout:2",
			`MissingClusterDNS: pod: "web_shop(u1)". kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.`},
		{"no --resolv-conf: the local resolver only", DNS{}, dnsPod(corev1.DNSDefault, false, nil), "127.0.0.1 | . | ", ""},
		{"None: the pod's PodConfig alone", cluster, dnsPod(corev1.DNSNone, false, &corev1.PodDNSConfig{
			Nameservers: []string{"1.1.1.1"}, Searches: []string{"a.example"}, Options: []corev1.PodDNSConfigOption{{Name: "edns0"}}}),
			"1.1.1.1 | a.example | edns0", ""},
		{"PodConfig appended without duplicates, options overridden by name", cluster, dnsPod(corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{
			Nameservers: []string{"10.96.0.10", "1.1.1.1"}, Searches: []string{"cluster.local", "b.example"},
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "single-request"}}}),
			"10.96.0.10 1.1.1.1 | " + clusterSearch + " b.example | ndots:2 single-request", ""},
		{"more than 3 nameservers: the first 3, with a warning", cluster, dnsPod(corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{
			Nameservers: []string{"1.1.1.1", "8.8.8.8", "9.9.9.9"}}),
			"10.96.0.10 1.1.1.1 8.8.8.8 | " + clusterSearch + " | ndots:5",
			"DNSConfigForming: Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.96.0.10 1.1.1.1 8.8.8.8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, events, err := tc.dns.PodConfig(tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("%s | %s | %s", strings.Join(cfg.Servers, " "), strings.Join(cfg.Searches, " "), strings.Join(cfg.Options, " "))
			if got != tc.want {
				t.Errorf("config\n %s\nwant\n %s", got, tc.want)
			}
			var ev []string
			for _, e := range events {
				ev = append(ev, e.Reason+": "+e.Message)
			}
			if strings.Join(ev, "\n") != tc.wantEvents {
				t.Errorf("events %q, want %q", ev, tc.wantEvents)
			}
		})
	}
	var searches []string
	for i := range 40 {
		searches = append(searches, fmt.Sprintf("d%d.example", i))
	}
	cfg, events, _ := DNS{}.PodConfig(dnsPod(corev1.DNSNone, false, &corev1.PodDNSConfig{Searches: searches}))
	if len(cfg.Searches) != maxSearchPaths || len(events) != 1 || !strings.HasPrefix(events[0].Message, "Search Line limits were exceeded") {
		t.Errorf("40 search paths: kept %d, events %v", len(cfg.Searches), events)
	}
	if _, _, err := (DNS{ResolvConf: "/does/not/exist"}).PodConfig(dnsPod(corev1.DNSDefault, false, nil)); err == nil {
		t.Error("an unreadable --resolv-conf must fail the sandbox, not give the pod no resolver")
	}
}

func TestHostnameAndEtcHosts(t *testing.T) {
	long := strings.Repeat("a", 62) + "-b"
	for _, tc := range []struct {
		name             string
		spec             corev1.PodSpec
		podName          string
		hostname, domain string
		sandbox          string // "" : same as hostname
		err              string
	}{
		{name: "the pod's name", podName: "web", hostname: "web"},
		{name: "spec.hostname", podName: "web-0", spec: corev1.PodSpec{Hostname: "db"}, hostname: "db"},
		{name: "a subdomain under the cluster domain", podName: "web-0", spec: corev1.PodSpec{Hostname: "db", Subdomain: "backend"},
			hostname: "db", domain: "backend.shop.svc.cluster.local"},
		{name: "setHostnameAsFQDN", podName: "web-0", spec: corev1.PodSpec{Hostname: "db", Subdomain: "backend", SetHostnameAsFQDN: ptr.To(true)},
			hostname: "db", domain: "backend.shop.svc.cluster.local", sandbox: "db.backend.shop.svc.cluster.local"},
		{name: "a long pod name cut to a label without a trailing dash", podName: long, hostname: strings.Repeat("a", 62)},
		{name: "an FQDN over 64 characters", podName: "web", spec: corev1.PodSpec{Hostname: strings.Repeat("h", 40), Subdomain: "backend", SetHostnameAsFQDN: ptr.To(true)},
			err: "FQDN " + strings.Repeat("h", 40) + ".backend.shop.svc.cluster.local is too long (64 characters is the max, 71 characters requested)"},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: tc.podName, Namespace: "shop"}, Spec: tc.spec}
		h, d, err := HostnameAndDomain(pod, "cluster.local")
		sb, sbErr := SandboxHostname(pod, "cluster.local")
		if tc.err != "" {
			if sbErr == nil || !strings.Contains(sbErr.Error(), tc.err) {
				t.Errorf("%s: %v, want %s", tc.name, sbErr, tc.err)
			}
			continue
		}
		if tc.sandbox == "" {
			tc.sandbox = tc.hostname
		}
		if err != nil || sbErr != nil || h != tc.hostname || d != tc.domain || sb != tc.sandbox {
			t.Errorf("%s: %q %q %q %v %v, want %q %q %q", tc.name, h, d, sb, err, sbErr, tc.hostname, tc.domain, tc.sandbox)
		}
	}

	pod := &corev1.Pod{Spec: corev1.PodSpec{HostAliases: []corev1.HostAlias{{IP: "192.0.2.1", Hostnames: []string{"foo.local", "bar.local"}}}}}
	want := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n" +
		"fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n" +
		"10.244.0.5\tdb.backend.shop.svc.cluster.local\tdb\n\n# Entries added by HostAliases.\n192.0.2.1\tfoo.local\tbar.local\n"
	if got := string(EtcHosts(pod, []string{"10.244.0.5"}, "db", "backend.shop.svc.cluster.local", nil)); got != want {
		t.Errorf("/etc/hosts\n%s\nwant\n%s", got, want)
	}
	pod.Spec.HostNetwork, pod.Spec.HostAliases = true, nil
	if got := string(EtcHosts(pod, nil, "node", "", []byte("127.0.0.1 localhost\n"))); got != "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n" {
		t.Errorf("host-network /etc/hosts %q", got)
	}
}
