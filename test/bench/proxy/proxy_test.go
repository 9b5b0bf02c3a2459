// Package proxy benchmarks kubeparts-proxy against the stock kube-proxy
// (nftables mode) on the same kube-apiserver, each in a fresh network
// namespace: full-sync time, network programming latency and memory.
package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kubeparts/kubeparts/test/integration/framework"
)

const (
	nodeName   = "bench-node"
	nodeIP     = "10.1.2.3"
	clusterIPs = "10.96.0.0/16" // envtest's /24 holds 254 Services; S2 needs 10,052
	probes     = 50             // programming-latency samples per run
	bigSize    = 10000          // endpoints of the one big Service
	pollEvery  = 10 * time.Millisecond
	// syncGap spaces the latency probes beyond --min-sync-period (1s), so
	// each change is a sync of its own rather than batched with the last.
	syncGap = 1100 * time.Millisecond
	idleFor = 10 * time.Second
	// probeBudget bounds the probes of one run, so that a proxy slow to
	// program (tens of seconds per change) still lets the whole benchmark
	// finish within make bench's 60m timeout, with fewer samples.
	probeBudget = 10 * time.Minute
)

// scale is a set of Services with ten endpoints each, plus the big Service
// and the probe Services (no endpoints until a probe adds their slice).
type scale struct {
	name     string
	services int
}

// proxyUnderTest is a proxy binary and how to start it with the common
// settings; both get the same client QPS/burst, sync periods, cluster CIDR and
// node name, kube-proxy through its config file (its flags cannot set all of
// them), kubeparts-proxy through flags.
type proxyUnderTest struct {
	name, binary, table string
	args                func(kubeconfig, dir string) []string
}

func proxies(b *testing.B) []proxyUnderTest {
	bin, err := framework.BinDir()
	if err != nil {
		b.Fatal(err)
	}
	return []proxyUnderTest{
		{"stock", filepath.Join(bin, "kube-proxy"), "kube-proxy", func(kubeconfig, dir string) []string {
			cfg := filepath.Join(dir, "kube-proxy.yaml")
			if err := os.WriteFile(cfg, []byte(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: `+nodeName+`
clusterCIDR: 10.244.0.0/16
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
clientConnection:
  kubeconfig: `+kubeconfig+`
  qps: 50
  burst: 100
conntrack:
  maxPerCore: 0
nftables:
  minSyncPeriod: 1s
  syncPeriod: 30s
`), 0o600); err != nil {
				b.Fatal(err)
			}
			return []string{"--config", cfg, "--v=2"}
		}},
		{"kubeparts", filepath.Join(bin, "kubeparts-proxy"), "kubeparts-proxy", func(kubeconfig, _ string) []string {
			return []string{"--kubeconfig", kubeconfig, "--hostname-override", nodeName, "--cluster-cidr", "10.244.0.0/16",
				"--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256",
				"--conntrack-max-per-core=0", "--kube-api-qps=50", "--kube-api-burst=100",
				"--min-sync-period=1s", "--sync-period=30s", "--v=2", "--profiling"}
		}},
	}
}

// result is what one run of one proxy at one scale measured.
type result struct {
	fullSyncMetric, fullSyncWall time.Duration
	latencies                    []time.Duration
	bigEndpoint                  time.Duration
	rssSynced, rssIdle           float64 // MB; rssIdle only at S1
}

// BenchmarkProxy: one kube-apiserver; at S1 (1,000 Services × 10 endpoints)
// and S2 (10,000 × 10), each with one more Service of 10,000 endpoints, the
// stock kube-proxy and kubeparts-proxy one after the other (alternating
// order over BENCH_ROUNDS rounds, default 1 because S2 is slow), each in a
// fresh network namespace. Per run: the first full sync (the proxy's own
// kubeproxy_sync_full_proxy_rules_duration_seconds, and the wall time from
// process start until the kernel holds the last Service), the latency from
// an EndpointSlice create returning to its Service's element in the kernel
// (50 sequential probes, p50 and p99), the latency of one endpoint added to
// the big Service, and RSS after the full sync and idle at S1 (10 s without
// a sync). What the kernel holds is read over netlink (see nfconn), checked
// once against `nft get element`. Ratios are kubeparts/stock (lower is
// better). BENCH_PROXY_SMALL=1 runs S1 only (4 minutes); the whole run
// takes about 25 minutes on 2 cores, most of it at S2.
func BenchmarkProxy(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("network namespaces and nftables need root")
	}
	for _, tool := range []string{"nft", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed", tool)
		}
	}
	rounds := 1
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	scales := []scale{{"S1", 1000}, {"S2", 10000}}
	if os.Getenv("BENCH_PROXY_SMALL") != "" {
		scales = scales[:1]
	}
	env, err := framework.Start("bench-proxy", func(e *envtest.Environment, _ string) error {
		e.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", clusterIPs)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.Stop() })
	client := env.FastClient(b)
	createNode(b, client)
	kubeconfig := env.WriteKubeconfig(b)
	impls := proxies(b)
	// BENCH_PROXY_ONLY=kubeparts (or stock) runs one side only, e.g. to profile it.
	if only := os.Getenv("BENCH_PROXY_ONLY"); only != "" {
		impls = slices.DeleteFunc(impls, func(p proxyUnderTest) bool { return p.name != only })
		if len(impls) == 0 {
			b.Fatalf("BENCH_PROXY_ONLY=%s: no such proxy (kubeparts or stock)", only)
		}
	}
	results := map[string]map[string][]result{} // scale -> proxy -> rounds
	runs := 0
	for _, sc := range scales {
		began := time.Now()
		objs := createScale(b, client, sc)
		logf("%s: %d Services + big + %d probes created in %s", sc.name, sc.services, probes, time.Since(began).Round(time.Second))
		results[sc.name] = map[string][]result{}
		for round := range rounds {
			order := impls
			if round%2 == 1 {
				order = []proxyUnderTest{impls[1], impls[0]}
			}
			for _, p := range order {
				runs++
				r := runProxy(b, env, client, kubeconfig, p, sc, objs, runs)
				results[sc.name][p.name] = append(results[sc.name][p.name], r)
				logf("%s round %d %-9s full sync %.2fs (metric) %.2fs (wall), programming p50 %.0fms p99 %.0fms (%d probes), big +1 endpoint %.0fms, RSS %.0fMB",
					sc.name, round+1, p.name, r.fullSyncMetric.Seconds(), r.fullSyncWall.Seconds(),
					ms(framework.Quantile(r.latencies, 0.5)), ms(framework.Quantile(r.latencies, 0.99)), len(r.latencies), ms(r.bigEndpoint), r.rssSynced)
			}
		}
		deleteScale(b, client, objs.ns)
	}
	report(b, scales, results, rounds)
}

// logf prints progress at once: what a benchmark logs with b.Logf shows
// only when it ends, cut to ten lines.
func logf(format string, args ...any) { fmt.Printf("proxy bench: "+format+"\n", args...) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// report prints the table and reports each value with b.ReportMetric:
// latencies pooled over rounds, the rest the median of rounds.
func report(b *testing.B, scales []scale, results map[string]map[string][]result, rounds int) {
	type row struct {
		label, unit, goal string
		get               func(rs []result) float64
	}
	med := func(f func(r result) float64) func([]result) float64 {
		return func(rs []result) float64 {
			var v []float64
			for _, r := range rs {
				v = append(v, f(r))
			}
			return median(v)
		}
	}
	pooled := func(q float64) func([]result) float64 {
		return func(rs []result) float64 {
			var all []time.Duration
			for _, r := range rs {
				all = append(all, r.latencies...)
			}
			return framework.Quantile(all, q).Seconds()
		}
	}
	rows := []row{
		{"full_sync_metric", "s", "<= 1", med(func(r result) float64 { return r.fullSyncMetric.Seconds() })},
		{"full_sync_wall", "s", "<= 1", med(func(r result) float64 { return r.fullSyncWall.Seconds() })},
		{"programming_p50", "s", "", pooled(0.5)},
		{"programming_p99", "s", "<= 1", pooled(0.99)},
		{"big_add_endpoint", "s", "", med(func(r result) float64 { return r.bigEndpoint.Seconds() })},
		{"rss_synced", "MB", "<= 0.5", med(func(r result) float64 { return r.rssSynced })},
		{"rss_idle", "MB", "<= 0.5", med(func(r result) float64 { return r.rssIdle })},
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\nkube-proxy (stock, nftables) vs kubeparts-proxy, %d round(s); ratio = kubeparts/stock, lower is better\n", rounds)
	fmt.Fprintf(&out, "%-24s %12s %12s %8s  %s\n", "metric", "stock", "kubeparts", "ratio", "goal")
	for _, sc := range scales {
		for _, rw := range rows {
			if rw.label == "rss_idle" && sc.name != "S1" {
				continue
			}
			stock, ours := rw.get(results[sc.name]["stock"]), rw.get(results[sc.name]["kubeparts"])
			label := sc.name + "_" + rw.label
			ratio := ours / stock
			b.ReportMetric(stock, label+"_stock_"+rw.unit)
			b.ReportMetric(ours, label+"_kubeparts_"+rw.unit)
			b.ReportMetric(ratio, label+"_ratio")
			goal := ""
			if rw.goal != "" {
				verdict := "met"
				if (rw.goal == "<= 1" && ratio > 1) || (rw.goal == "<= 0.5" && ratio > 0.5) {
					verdict = "NOT met"
				}
				goal = "ratio " + rw.goal + " (" + verdict + ")"
			}
			fmt.Fprintf(&out, "%-24s %12s %12s %8.2f  %s\n", label+" ("+rw.unit+")", format(stock, rw.unit), format(ours, rw.unit), ratio, goal)
		}
		samples := func(name string) (n int) {
			for _, r := range results[sc.name][name] {
				n += len(r.latencies)
			}
			return n
		}
		fmt.Fprintf(&out, "%-24s %12d %12d\n", sc.name+"_programming_samples", samples("stock"), samples("kubeparts"))
	}
	fmt.Print(out.String())
}

func format(v float64, unit string) string {
	if unit == "s" {
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// createNode creates the proxies' Node with an InternalIP: both read their
// NodePort addresses from it and wait for it at startup.
func createNode(b *testing.B, c kubernetes.Interface) {
	ctx := context.Background()
	n, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nodeIP}, {Type: corev1.NodeHostName, Address: nodeName}}
	if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		b.Fatal(err)
	}
}

// scaleObjects are a scale's namespace and the addresses the runs check.
type scaleObjects struct {
	ns string
	// lastIP is the cluster IP of the Service created last.
	lastIP string
	// probeIPs are the cluster IPs of the probe Services, without endpoints.
	probeIPs []string
	bigIP    string
}

// podIP makes up the k-th pod IP of 10.244.0.0/16. S2 has more endpoints
// than the range has addresses: Services then share pod IPs, as pods backing
// several Services do; within one Service they are distinct.
func podIP(k int) string {
	k = k%65000 + 1
	return fmt.Sprintf("10.244.%d.%d", k>>8, k&255)
}

func service(ns, name string, port int32) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: []corev1.ServicePort{
			{Name: "http", Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}}}
}

func slice(ns, svc, name string, ips []string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, ip := range ips {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(nodeName),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}})
	}
	return s
}

func tenIPs(k int) []string {
	var ips []string
	for j := range 10 {
		ips = append(ips, podIP(k*10+j))
	}
	return ips
}

// createScale creates, in a namespace of its own, the scale's Services with
// their slices, the big Service and the probe Services.
func createScale(b *testing.B, c kubernetes.Interface, sc scale) scaleObjects {
	ctx := context.Background()
	ns := "kpbench-" + strings.ToLower(sc.name)
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	objs := scaleObjects{ns: ns, probeIPs: make([]string, probes)}
	framework.Parallel(b, sc.services, func(i int) error {
		name := fmt.Sprintf("svc-%05d", i)
		s, err := c.CoreV1().Services(ns).Create(ctx, service(ns, name, 80), metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if i == sc.services-1 {
			objs.lastIP = s.Spec.ClusterIP
		}
		_, err = c.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(ns, name, name+"-a", tenIPs(i)), metav1.CreateOptions{})
		return err
	})
	big, err := c.CoreV1().Services(ns).Create(ctx, service(ns, "big", 9090), metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	objs.bigIP = big.Spec.ClusterIP
	framework.Parallel(b, bigSize/1000, func(i int) error {
		var ips []string
		for j := range 1000 {
			ips = append(ips, podIP(i*1000+j))
		}
		_, err := c.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(ns, "big", fmt.Sprintf("big-%02d", i), ips), metav1.CreateOptions{})
		return err
	})
	framework.Parallel(b, probes, func(i int) error {
		s, err := c.CoreV1().Services(ns).Create(ctx, service(ns, fmt.Sprintf("probe-%02d", i), 80), metav1.CreateOptions{})
		if err == nil {
			objs.probeIPs[i] = s.Spec.ClusterIP
		}
		return err
	})
	return objs
}

// deleteScale removes a scale's Services and slices (the namespace stays: no
// namespace controller runs here to empty it), so the next scale is clean.
func deleteScale(b *testing.B, c kubernetes.Interface, ns string) {
	ctx := context.Background()
	if err := c.DiscoveryV1().EndpointSlices(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		b.Fatal(err)
	}
	list, err := c.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	framework.Parallel(b, len(list.Items), func(i int) error {
		return c.CoreV1().Services(ns).Delete(ctx, list.Items[i].Name, metav1.DeleteOptions{})
	})
}

// running is a proxy started in a namespace.
type running struct {
	p    proxyUnderTest
	ns   *netns
	nl   *nfconn
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// fatal fails the benchmark with the proxy's log tail.
func (r *running) fatal(b *testing.B, format string, args ...any) {
	b.Helper()
	b.Fatalf("%s: %s\nlast lines of %s:\n%s", r.p.name, fmt.Sprintf(format, args...), r.log, tail(r.log, 40))
}

// await polls check every interval until it returns true, failing with the
// proxy's log tail after timeout; it returns when check first succeeded.
func (r *running) await(b *testing.B, timeout, interval time.Duration, what string, check func() (bool, error)) time.Time {
	b.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		select {
		case <-r.done:
			r.fatal(b, "exited while waiting for %s", what)
		default:
		}
		ok, err := check()
		if ok {
			return time.Now()
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			r.fatal(b, "%s: not done after %s (last error: %v)", what, timeout, lastErr)
		}
		time.Sleep(interval)
	}
}

func (r *running) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// hasElement reports whether the proxy's service-ips map holds the key
// ip . tcp . port.
func (r *running) hasElement(ip string, port int) (bool, error) {
	return r.nl.hasElement(r.p.table, "service-ips", serviceKey(ip, port))
}

// metric reads one value from the proxy's /metrics (kube-proxy labels its
// series with ip_family: the IPv4 one is ours to compare).
// profile writes the proxy's /debug/pprof/<what> to path (the proxy runs
// with --profiling); it waits for the metrics server to listen.
func (r *running) profile(b *testing.B, what, path string) {
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: r.ns.dial, DisableKeepAlives: true}}
	var resp *http.Response
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if resp, err = hc.Get("http://127.0.0.1:10249/debug/pprof/" + what); err == nil {
			break
		}
		if time.Now().After(deadline) {
			logf("%s: no profile: %v", r.p.name, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("profile: %s", resp.Status)
	}
	if err == nil {
		err = os.WriteFile(path, data, 0o644)
	}
	if err != nil {
		logf("%s: no profile: %v", r.p.name, err)
		return
	}
	logf("%s: %s profile in %s", r.p.name, what, path)
}

func (r *running) metric(name string) (float64, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: r.ns.dial, DisableKeepAlives: true}}
	resp, err := hc.Get("http://127.0.0.1:10249/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		series, value, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(series, name) {
			continue
		}
		if labels := series[len(name):]; labels == "" || (strings.HasPrefix(labels, "{") && strings.Contains(labels, `ip_family="IPv4"`)) {
			return strconv.ParseFloat(value, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// runProxy runs one proxy in a fresh namespace against the scale's objects
// and measures it; it leaves the objects as it found them.
func runProxy(b *testing.B, env *framework.Env, c kubernetes.Interface, kubeconfig string, p proxyUnderTest, sc scale, objs scaleObjects, n int) result {
	ctx := context.Background()
	ns, err := newNetns(fmt.Sprintf("kpbench-%d", n))
	if err != nil {
		b.Fatal(err)
	}
	defer ns.delete()
	if err := ns.forward(strings.TrimSuffix(strings.TrimPrefix(env.Config.Host, "https://"), "/")); err != nil {
		b.Fatal(err)
	}
	nl, err := ns.nfconn()
	if err != nil {
		b.Fatal(err)
	}
	logPath := filepath.Join(env.LogDir, fmt.Sprintf("%s-%s-%d.log", p.name, sc.name, n))
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("nsenter", append([]string{"--net=" + ns.path, "--", p.binary}, p.args(kubeconfig, b.TempDir())...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	started := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	r := &running{p: p, ns: ns, nl: nl, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(r.done) }()
	defer r.stop()
	b.Cleanup(r.stop) // after a failure too: no proxy left programming a deleted namespace

	// nsenter execs the proxy, so the pid becomes the proxy's once exec is done.
	pid := cmd.Process.Pid
	r.await(b, 30*time.Second, pollEvery, "exec of "+p.binary, func() (bool, error) {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		return exe == p.binary, err
	})
	// BENCH_PROXY_CPU=dir: kubeparts-proxy's CPU profile of its first seconds,
	// which hold the first full sync.
	cpuDone := make(chan struct{})
	if dir := os.Getenv("BENCH_PROXY_CPU"); dir != "" && p.name == "kubeparts" {
		go func() {
			defer close(cpuDone)
			r.profile(b, "profile?seconds=5", filepath.Join(dir, fmt.Sprintf("cpu-%s.pb.gz", sc.name)))
		}()
	} else {
		close(cpuDone)
	}
	defer func() { <-cpuDone }()

	var res result
	timeout := 2 * time.Minute
	if sc.services > 1000 {
		timeout = 20 * time.Minute
	}
	synced := r.await(b, timeout, pollEvery, "element of the last Service", func() (bool, error) { return r.hasElement(objs.lastIP, 80) })
	res.fullSyncWall = synced.Sub(started)
	res.rssSynced = rssMB(b, pid)
	// The histogram is observed just after the transaction returns, so it
	// may lag the kernel by a moment.
	var sum, count float64
	r.await(b, time.Minute, 100*time.Millisecond, "first full sync in /metrics", func() (bool, error) {
		var err error
		if count, err = r.metric("kubeproxy_sync_full_proxy_rules_duration_seconds_count"); err != nil || count < 1 {
			return false, err
		}
		sum, err = r.metric("kubeproxy_sync_full_proxy_rules_duration_seconds_sum")
		return err == nil, err
	})
	if count != 1 {
		logf("%s: %v full syncs already: the metric is their mean", p.name, count)
	}
	res.fullSyncMetric = time.Duration(sum / count * float64(time.Second))
	// The nft command agrees with the netlink lookup (and shows what it costs).
	t := time.Now()
	if _, err := ns.nft(ctx, "get", "element", "ip", p.table, "service-ips", fmt.Sprintf("{ %s . tcp . 80 }", objs.lastIP)); err != nil {
		r.fatal(b, "netlink found the last Service, nft did not: %v", err)
	}
	heap, _ := r.metric("go_memstats_heap_inuse_bytes")
	logf("%s %s: first full sync %.3fs (metric), element present %.3fs after start, RSS %.1f MB (Go heap in use %.1f MB); `nft get element` takes %.0f ms here",
		p.name, sc.name, sum/count, res.fullSyncWall.Seconds(), res.rssSynced, heap/(1<<20), ms(time.Since(t)))

	// BENCH_PROXY_HEAP=dir: kubeparts-proxy's heap profile after its full sync.
	if dir := os.Getenv("BENCH_PROXY_HEAP"); dir != "" && p.name == "kubeparts" {
		r.profile(b, "heap?gc=1", filepath.Join(dir, fmt.Sprintf("heap-%s.pb.gz", sc.name)))
	}

	// Programming latency: each probe Service gets its slice; time from the
	// create returning to its element in the kernel.
	last := time.Now()
	for i, ip := range objs.probeIPs {
		if time.Since(synced) > probeBudget {
			logf("%s %s: only %d probes in %s", p.name, sc.name, i, probeBudget)
			break
		}
		time.Sleep(time.Until(last.Add(syncGap)))
		name := fmt.Sprintf("probe-%02d", i)
		if _, err := c.DiscoveryV1().EndpointSlices(objs.ns).Create(ctx, slice(objs.ns, name, name+"-a", tenIPs(100000+i)), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		created := time.Now()
		present := r.await(b, 3*time.Minute, pollEvery, "element of "+name, func() (bool, error) { return r.hasElement(ip, 80) })
		res.latencies = append(res.latencies, present.Sub(created))
		last = present
	}

	// One endpoint more for the big Service. Stock kube-proxy has no
	// endpoint chains any more (it DNATs through a map in the service
	// chain), so the check common to both is the service chain: its map
	// must send traffic to the new endpoint.
	out, err := ns.nft(ctx, "get", "element", "ip", p.table, "service-ips", fmt.Sprintf("{ %s . tcp . 9090 }", objs.bigIP))
	if err != nil {
		r.fatal(b, "big Service not programmed: %v", err)
	}
	m := regexp.MustCompile(`goto ([^\s,}]+)`).FindStringSubmatch(out)
	if m == nil {
		r.fatal(b, "no chain in %q", out)
	}
	chain, newIP := m[1], podIP(bigSize)
	// The check must see the endpoints there are, and not yet the new one.
	if ok, err := nl.chainSendsTo(p.table, chain, podIP(0), 8080); !ok {
		r.fatal(b, "endpoint %s not found in chain %s (err %v): the check cannot work", podIP(0), chain, err)
	}
	if ok, _ := nl.chainSendsTo(p.table, chain, newIP, 8080); ok {
		r.fatal(b, "endpoint %s already in chain %s", newIP, chain)
	}
	time.Sleep(time.Until(last.Add(syncGap)))
	if _, err := c.DiscoveryV1().EndpointSlices(objs.ns).Create(ctx, slice(objs.ns, "big", "big-extra", []string{newIP}), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	created := time.Now()
	present := r.await(b, 3*time.Minute, pollEvery, "endpoint "+newIP+" in "+chain, func() (bool, error) {
		return nl.chainSendsTo(p.table, chain, newIP, 8080)
	})
	res.bigEndpoint = present.Sub(created)

	// Idle at S1: RSS once the proxy has gone idleFor without a sync (stock
	// kube-proxy does not resync every --sync-period when nothing changes).
	if sc.name == "S1" {
		r.await(b, 2*time.Minute, 100*time.Millisecond, "idle", func() (bool, error) {
			lastSync, err := r.metric("kubeproxy_sync_proxy_rules_last_timestamp_seconds")
			return err == nil && time.Since(time.Unix(0, int64(lastSync*1e9))) >= idleFor, err
		})
		res.rssIdle = rssMB(b, pid)
		heap, _ = r.metric("go_memstats_heap_inuse_bytes")
		logf("%s %s: idle RSS %.1f MB, Go heap in use %.1f MB", p.name, sc.name, res.rssIdle, heap/(1<<20))
	}

	r.stop()
	// Leave the scale as found for the next proxy: without the probes' and
	// the extra endpoint's slices.
	made := len(res.latencies)
	framework.Parallel(b, made+1, func(i int) error {
		name := "big-extra"
		if i < made {
			name = fmt.Sprintf("probe-%02d-a", i)
		}
		return c.DiscoveryV1().EndpointSlices(objs.ns).Delete(ctx, name, metav1.DeleteOptions{})
	})
	return res
}

// rssMB is a process's resident set size in MB.
func rssMB(b *testing.B, pid int) float64 {
	v, err := framework.RSSBytes(pid)
	if err != nil {
		b.Fatal(err)
	}
	return v / (1 << 20)
}

func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// inNetns runs f on a fresh OS thread switched into the network namespace at
// path. Sockets f creates stay in that namespace whatever thread uses them
// later. The thread is never switched back: the goroutine exits locked, so the
// runtime discards the thread instead of reusing it in the wrong namespace.
func inNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// netns is a fresh network namespace a proxy runs in, so its nftables table
// and sysctls never touch the host or the other proxy.
type netns struct {
	name, path string
	closers    []io.Closer
}

func newNetns(name string) (*netns, error) {
	// A leftover of an interrupted run would hold an old table.
	_ = exec.Command("ip", "netns", "delete", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	n := &netns{name: name, path: "/run/netns/" + name}
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		n.delete()
		return nil, fmt.Errorf("lo up in %s: %v: %s", name, err, out)
	}
	return n, nil
}

func (n *netns) delete() {
	for _, c := range n.closers {
		_ = c.Close()
	}
	n.closers = nil
	_ = exec.Command("ip", "netns", "delete", n.name).Run()
}

// forward makes addr (the apiserver's, on the host's loopback) reachable at
// the same address inside the namespace, which has a loopback of its own:
// relaying TCP keeps the kubeconfig and the serving certificate (issued for
// 127.0.0.1) valid as they are. Both proxies pay the same relay.
func (n *netns) forward(addr string) error {
	var l net.Listener
	if err := inNetns(n.path, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		return err
	}
	n.closers = append(n.closers, l)
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in); _ = out.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return nil
}

// dial connects to addr inside the namespace (the proxy's metrics server).
func (n *netns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(n.path, func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// nft runs nft inside the namespace.
func (n *netns) nft(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.path, "--", "nft"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("nft %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// nfconn is a netfilter netlink socket in a namespace, for the checks that
// are polled every 10ms. `nft get element` and `nft list chain` load the
// whole table into nft's cache first: 0.1 s at S1 and nearly 4 s at S2 with
// either proxy's table, which would be the resolution of the latencies and
// a CPU core taken from the proxy under test. One element lookup here is a
// hash lookup in the kernel.
type nfconn struct {
	fd  int
	seq uint32
	buf []byte
}

func (n *netns) nfconn() (*nfconn, error) {
	c := &nfconn{fd: -1, buf: make([]byte, 1<<20)}
	err := inNetns(n.path, func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return err
		}
		c.fd = fd
		// A lost reply must not hang the benchmark past its deadlines.
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10}); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	})
	if err != nil {
		if c.fd >= 0 {
			_ = unix.Close(c.fd)
		}
		return nil, err
	}
	n.closers = append(n.closers, c)
	return c, nil
}

func (c *nfconn) Close() error { return unix.Close(c.fd) }

type nlattr struct {
	typ  uint16
	data []byte
}

func putAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofNlAttr+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func nested(typ uint16) uint16 { return typ | unix.NLA_F_NESTED }

func cstr(s string) []byte { return append([]byte(s), 0) }

func attrs(b []byte) []nlattr {
	var out []nlattr
	for len(b) >= unix.SizeofNlAttr {
		l := int(binary.NativeEndian.Uint16(b))
		if l < unix.SizeofNlAttr || l > len(b) {
			break
		}
		out = append(out, nlattr{binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER), b[unix.SizeofNlAttr:l]})
		b = b[min(len(b), (l+3)&^3):]
	}
	return out
}

// request sends one nf_tables message (family ip) and returns the payloads
// (after the nfgenmsg header) of the replies, up to the ack or end of dump.
func (c *nfconn) request(msgType, flags uint16, payload []byte) ([][]byte, error) {
	c.seq++
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+4+len(payload))
	msg = append(msg, unix.NFPROTO_IPV4, unix.NFNETLINK_V0, 0, 0)
	msg = append(msg, payload...)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.NFNL_SUBSYS_NFTABLES<<8|msgType)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(msg[8:], c.seq)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		n, _, err := unix.Recvfrom(c.fd, c.buf, 0)
		if err != nil {
			return nil, err
		}
		for b := c.buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return nil, fmt.Errorf("malformed netlink message")
			}
			typ, seq, body := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint32(b[8:]), b[unix.SizeofNlMsghdr:l]
			b = b[min(len(b), (l+3)&^3):]
			if seq != c.seq {
				continue // the late reply of an earlier request
			}
			switch typ {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if errno := int32(binary.NativeEndian.Uint32(body)); errno != 0 {
					return out, unix.Errno(-errno)
				}
				return out, nil
			default:
				if len(body) >= 4 {
					out = append(out, append([]byte(nil), body[4:]...))
				}
			}
		}
	}
}

// serviceKey is the key ip . tcp . port of a service-ips map: each part of
// a concatenation takes a whole 32-bit register.
func serviceKey(ip string, port int) []byte {
	k := append([]byte{}, net.ParseIP(ip).To4()...)
	k = append(k, unix.IPPROTO_TCP, 0, 0, 0)
	return append(k, byte(port>>8), byte(port), 0, 0)
}

// hasElement looks one key up in a set or map; a missing table or set is
// "not there" too (the proxy has not written it yet).
func (c *nfconn) hasElement(table, set string, key []byte) (bool, error) {
	elem := putAttr(nil, nested(unix.NFTA_SET_ELEM_KEY), putAttr(nil, unix.NFTA_DATA_VALUE, key))
	p := putAttr(nil, unix.NFTA_SET_ELEM_LIST_TABLE, cstr(table))
	p = putAttr(p, unix.NFTA_SET_ELEM_LIST_SET, cstr(set))
	p = putAttr(p, nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS), putAttr(nil, nested(unix.NFTA_LIST_ELEM), elem))
	_, err := c.request(unix.NFT_MSG_GETSETELEM, 0, p)
	if err == unix.ENOENT {
		return false, nil
	}
	return err == nil, err
}

// chainSendsTo reports whether a rule of chain looks up a map holding the
// endpoint ip:port: as a value ip . port (kube-proxy's dnat map) or as a
// jump to a chain named ...__ip/port (kubeparts-proxy's vmap).
func (c *nfconn) chainSendsTo(table, chain, ip string, port int) (bool, error) {
	p := putAttr(nil, unix.NFTA_RULE_TABLE, cstr(table))
	p = putAttr(p, unix.NFTA_RULE_CHAIN, cstr(chain))
	rules, err := c.request(unix.NFT_MSG_GETRULE, unix.NLM_F_DUMP, p)
	if err != nil {
		return false, err
	}
	var sets []string
	for _, rule := range rules {
		for _, a := range attrs(rule) {
			if a.typ != unix.NFTA_RULE_EXPRESSIONS {
				continue
			}
			for _, e := range attrs(a.data) {
				var name string
				var data []byte
				for _, ea := range attrs(e.data) {
					switch ea.typ {
					case unix.NFTA_EXPR_NAME:
						name = strings.TrimRight(string(ea.data), "\x00")
					case unix.NFTA_EXPR_DATA:
						data = ea.data
					}
				}
				for _, la := range attrs(data) {
					if name == "lookup" && la.typ == unix.NFTA_LOOKUP_SET {
						sets = append(sets, strings.TrimRight(string(la.data), "\x00"))
					}
				}
			}
		}
	}
	value := append(append([]byte{}, net.ParseIP(ip).To4()...), byte(port>>8), byte(port))
	suffix := fmt.Sprintf("__%s/%d", ip, port)
	for _, set := range sets {
		p := putAttr(nil, unix.NFTA_SET_ELEM_LIST_TABLE, cstr(table))
		p = putAttr(p, unix.NFTA_SET_ELEM_LIST_SET, cstr(set))
		msgs, err := c.request(unix.NFT_MSG_GETSETELEM, unix.NLM_F_DUMP, p)
		if err != nil {
			return false, err
		}
		for _, msg := range msgs {
			for _, list := range attrs(msg) {
				if list.typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
					continue
				}
				for _, elem := range attrs(list.data) {
					for _, ea := range attrs(elem.data) {
						if ea.typ != unix.NFTA_SET_ELEM_DATA {
							continue
						}
						for _, d := range attrs(ea.data) {
							switch d.typ {
							case unix.NFTA_DATA_VALUE:
								if len(d.data) >= 6 && string(d.data[:6]) == string(value) {
									return true, nil
								}
							case unix.NFTA_DATA_VERDICT:
								for _, v := range attrs(d.data) {
									if v.typ == unix.NFTA_VERDICT_CHAIN && strings.HasSuffix(strings.TrimRight(string(v.data), "\x00"), suffix) {
										return true, nil
									}
								}
							}
						}
					}
				}
			}
		}
	}
	return false, nil
}
