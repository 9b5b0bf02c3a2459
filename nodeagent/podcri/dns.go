package podcri

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A pod's names and resolver, as the kubelet sets them up: the sandbox's
// hostname (spec.hostname or the pod name, with spec.subdomain a domain
// under the cluster's), /etc/hosts naming the pod's own IPs and its
// hostAliases, and resolv.conf per dnsPolicy and PodConfig.

// DNS are a node's settings for pod name resolution (the kubelet's flags).
type DNS struct {
	// ClusterDNS are the cluster DNS servers' IPs (--cluster-dns); none:
	// ClusterFirst pods fall back to the Default policy, with a warning.
	ClusterDNS []string
	// ClusterDomain is the cluster's DNS domain (--cluster-domain).
	ClusterDomain string
	// ResolvConf is the host resolver configuration Default pods inherit
	// (--resolv-conf); "" gives them the local host's resolver only.
	ResolvConf string
}

// The resolver's limits (glibc's, as the kubelet enforces them).
const (
	maxNameservers     = 3
	maxSearchPaths     = 32
	maxSearchLineChars = 2048
)

// PodEvent is an event to emit about a pod when its sandbox is created.
type PodEvent struct{ Reason, Message string }

// HostnameAndDomain is the pod's hostname (spec.hostname, else its name,
// cut to 63 characters) and, with a subdomain, its domain
// <subdomain>.<namespace>.svc.<cluster domain>.
func HostnameAndDomain(pod *corev1.Pod, clusterDomain string) (string, string, error) {
	hostname := pod.Name
	if pod.Spec.Hostname != "" {
		if msgs := validation.IsDNS1123Label(pod.Spec.Hostname); len(msgs) > 0 {
			return "", "", fmt.Errorf("pod Hostname %q is not a valid DNS label: %s", pod.Spec.Hostname, strings.Join(msgs, ";"))
		}
		hostname = pod.Spec.Hostname
	}
	if len(hostname) > validation.DNS1123LabelMaxLength {
		// A pod name may be longer than a label: cut it, as the kubelet
		// does, without leaving a trailing '-' or '.'.
		hostname = strings.TrimRight(hostname[:validation.DNS1123LabelMaxLength], "-.")
		if hostname == "" {
			return "", "", fmt.Errorf("hostname for pod %q was invalid after truncation", pod.Name)
		}
	}
	domain := ""
	if pod.Spec.Subdomain != "" {
		if msgs := validation.IsDNS1123Label(pod.Spec.Subdomain); len(msgs) > 0 {
			return "", "", fmt.Errorf("pod Subdomain %q is not a valid DNS label: %s", pod.Spec.Subdomain, strings.Join(msgs, ";"))
		}
		domain = fmt.Sprintf("%s.%s.svc.%s", pod.Spec.Subdomain, pod.Namespace, clusterDomain)
	}
	return hostname, domain, nil
}

// SandboxHostname is the hostname the kernel gives the pod (its UTS
// namespace): the FQDN with setHostnameAsFQDN, which must fit the
// kernel's 64 characters.
func SandboxHostname(pod *corev1.Pod, clusterDomain string) (string, error) {
	hostname, domain, err := HostnameAndDomain(pod, clusterDomain)
	if err != nil {
		return "", err
	}
	if pod.Spec.SetHostnameAsFQDN != nil && *pod.Spec.SetHostnameAsFQDN && domain != "" {
		fqdn := hostname + "." + domain
		if len(fqdn) > 64 {
			return "", fmt.Errorf("failed to construct FQDN from pod hostname and cluster domain, FQDN %s is too long (64 characters is the max, %d characters requested)", fqdn, len(fqdn))
		}
		return fqdn, nil
	}
	return hostname, nil
}

// PodConfig is the pod's resolver configuration for the runtime to write
// as its resolv.conf, and the warnings to give about it.
func (d DNS) PodConfig(pod *corev1.Pod) (*runtimeapi.DNSConfig, []PodEvent, error) {
	var events []PodEvent
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	if policy == corev1.DNSClusterFirst && pod.Spec.HostNetwork {
		// A host-network pod resolves as its node unless it asks
		// otherwise (ClusterFirstWithHostNet).
		policy = corev1.DNSDefault
	}
	if policy == corev1.DNSClusterFirstWithHostNet {
		policy = corev1.DNSClusterFirst
	}
	if policy == corev1.DNSClusterFirst && len(d.ClusterDNS) == 0 {
		events = append(events, PodEvent{"MissingClusterDNS", fmt.Sprintf("pod: %q. kubelet does not have ClusterDNS IP configured and cannot create Pod using %q policy. Falling back to %q policy.",
			PodRef(pod), corev1.DNSClusterFirst, corev1.DNSDefault)})
		policy = corev1.DNSDefault
	}
	cfg := &runtimeapi.DNSConfig{}
	switch policy {
	case corev1.DNSNone:
	case corev1.DNSClusterFirst, corev1.DNSDefault:
		host, err := d.hostConfig()
		if err != nil {
			return nil, nil, err
		}
		if policy == corev1.DNSDefault {
			cfg = host
			break
		}
		cfg.Servers = slices.Clone(d.ClusterDNS)
		if d.ClusterDomain != "" {
			cfg.Searches = []string{pod.Namespace + ".svc." + d.ClusterDomain, "svc." + d.ClusterDomain, d.ClusterDomain}
		}
		cfg.Searches = uniq(append(cfg.Searches, host.Searches...))
		cfg.Options = []string{"ndots:5"}
	default:
		return nil, nil, fmt.Errorf("invalid DNSPolicy=%v", pod.Spec.DNSPolicy)
	}
	if pc := pod.Spec.DNSConfig; pc != nil {
		cfg.Servers = uniq(append(cfg.Servers, pc.Nameservers...))
		cfg.Searches = uniq(append(cfg.Searches, pc.Searches...))
		cfg.Options = mergeOptions(cfg.Options, pc.Options)
	}
	if len(cfg.Servers) > maxNameservers {
		cfg.Servers = cfg.Servers[:maxNameservers]
		events = append(events, PodEvent{"DNSConfigForming", "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: " + strings.Join(cfg.Servers, " ")})
	}
	if searches := fitSearches(cfg.Searches); len(searches) < len(cfg.Searches) {
		cfg.Searches = searches
		events = append(events, PodEvent{"DNSConfigForming", "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: " + strings.Join(searches, " ")})
	}
	return cfg, events, nil
}

// hostConfig is the node's own resolver configuration; without a
// --resolv-conf, the local host's resolver (and no search path).
func (d DNS) hostConfig() (*runtimeapi.DNSConfig, error) {
	if d.ResolvConf == "" {
		return &runtimeapi.DNSConfig{Servers: []string{"127.0.0.1"}, Searches: []string{"."}}, nil
	}
	data, err := os.ReadFile(d.ResolvConf)
	if err != nil {
		return nil, fmt.Errorf("reading the node's resolver configuration: %w", err)
	}
	return parseResolvConf(data), nil
}

// parseResolvConf reads nameserver, search (the last line wins) and options
// lines of a resolv.conf.
func parseResolvConf(data []byte) *runtimeapi.DNSConfig {
	cfg := &runtimeapi.DNSConfig{}
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		line := s.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			cfg.Servers = append(cfg.Servers, f[1])
		case "search":
			cfg.Searches = nil
			for _, d := range f[1:] {
				if d != "." {
					cfg.Searches = append(cfg.Searches, strings.TrimSuffix(d, "."))
				}
			}
		case "options":
			cfg.Options = append(cfg.Options, f[1:]...)
		}
	}
	return cfg
}

// mergeOptions overrides resolver options by name with the pod's, sorted
// for a stable resolv.conf.
func mergeOptions(base []string, pod []corev1.PodDNSConfigOption) []string {
	opts := map[string]string{}
	for _, o := range base {
		name, value, _ := strings.Cut(o, ":")
		opts[name] = value
	}
	for _, o := range pod {
		opts[o.Name] = ""
		if o.Value != nil {
			opts[o.Name] = *o.Value
		}
	}
	out := make([]string, 0, len(opts))
	for name, value := range opts {
		if value != "" {
			name += ":" + value
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// fitSearches keeps the search paths that fit the resolver's limits.
func fitSearches(searches []string) []string {
	if len(searches) > maxSearchPaths {
		searches = searches[:maxSearchPaths]
	}
	for len(searches) > 0 && len(strings.Join(searches, " ")) > maxSearchLineChars {
		searches = searches[:len(searches)-1]
	}
	return searches
}

func uniq(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// PodRef names a pod as the kubelet does in messages: name_namespace(uid).
func PodRef(pod *corev1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// EtcHosts is the /etc/hosts the kubelet gives a pod: localhost entries and
// the pod's IPs under its hostname (and FQDN with a subdomain), or for a
// host-network pod the node's own hosts file; then the hostAliases.
func EtcHosts(pod *corev1.Pod, ips []string, hostname, domain string, nodeHosts []byte) []byte {
	var b bytes.Buffer
	if pod.Spec.HostNetwork {
		b.WriteString("# Kubernetes-managed hosts file (host network).\n")
		b.Write(nodeHosts)
	} else {
		b.WriteString("# Kubernetes-managed hosts file.\n" +
			"127.0.0.1\tlocalhost\n" +
			"::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"fe00::0\tip6-localnet\n" +
			"fe00::0\tip6-mcastprefix\n" +
			"fe00::1\tip6-allnodes\n" +
			"fe00::2\tip6-allrouters\n")
		for _, ip := range ips {
			if domain != "" {
				fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", ip, hostname, domain, hostname)
			} else {
				fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
			}
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.Bytes()
}
