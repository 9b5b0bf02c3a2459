package scraper

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/component-base/metrics/testutil"

	"github.com/kubeparts/kubeparts/apiserver/scraper/scrapertest"
)

// parsed is a comparable view of a parser's result.
type parsed struct {
	nodeCPU     float64
	nodeCPUTS   int64
	nodeMemory  float64
	nodeHas     uint8
	scrapeError bool
	containers  []string // "ns/pod/container cpu@ts mem has"
}

func viewOf(p *parser) parsed {
	v := parsed{nodeCPU: p.nodeCPU, nodeCPUTS: p.nodeCPUTS, nodeMemory: p.nodeMemory, nodeHas: p.nodeHas, scrapeError: p.scrapeError}
	for _, r := range p.recs {
		v.containers = append(v.containers, fmt.Sprintf("%s/%s/%s %g@%d %g %d", r.namespace, r.pod, r.name, r.cpu, r.cpuTS, r.memory, r.has))
	}
	return v
}

const (
	tsMillis = 1_700_000_000_123
	tsNanos  = tsMillis * int64(time.Millisecond)
	nowNanos = int64(1_800_000_000_000_000_000)
)

// kubeletBody is verbatim in the shape kubelet 1.36 serves, including the
// families the scraper ignores.
const kubeletBody = `# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-7db6d8ff4d-2x9lq"} 12.345678 1700000000123
container_cpu_usage_seconds_total{container="sidecar",namespace="default",pod="web-0"} 0.5 1700000000123
container_cpu_usage_seconds_total{container="web",namespace="default",pod="web-0"} 1.5e+03 1700000000123
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-7db6d8ff4d-2x9lq"} 1.8259968e+07 1700000000123
container_memory_working_set_bytes{container="sidecar",namespace="default",pod="web-0"} 4.096e+06 1700000000123
container_memory_working_set_bytes{container="web",namespace="default",pod="web-0"} 1.048576e+08 1700000000123
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="coredns",namespace="kube-system",pod="coredns-7db6d8ff4d-2x9lq"} 1.6999e+09
# HELP container_swap_usage_bytes [ALPHA] Current amount of the container swap usage in bytes. Reported only on non-windows systems
# TYPE container_swap_usage_bytes gauge
container_swap_usage_bytes{container="coredns",namespace="kube-system",pod="coredns-7db6d8ff4d-2x9lq"} 0 1700000000123
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 4242.5 1700000000123
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 2.147483648e+09 1700000000123
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="default",pod="web-0"} 1500.5 1700000000123
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="default",pod="web-0"} 1.089536e+08 1700000000123
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
# HELP scrape_error [ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise
# TYPE scrape_error gauge
scrape_error 0
`

func TestParse(t *testing.T) {
	ts := fmt.Sprint(tsNanos)
	now := fmt.Sprint(nowNanos)
	both := hasCPU | hasMemory
	tests := []struct {
		name    string
		body    string
		want    parsed
		wantErr string
	}{
		{
			name: "kubelet body",
			body: kubeletBody,
			want: parsed{nodeCPU: 4242.5, nodeCPUTS: tsNanos, nodeMemory: 2147483648, nodeHas: both, containers: []string{
				"default/web-0/sidecar 0.5@" + ts + " 4.096e+06 3",
				"default/web-0/web 1500@" + ts + " 1.048576e+08 3",
				"kube-system/coredns-7db6d8ff4d-2x9lq/coredns 12.345678@" + ts + " 1.8259968e+07 3",
			}},
		},
		{
			name: "empty body",
			body: "",
			want: parsed{},
		},
		{
			name: "missing timestamps use the scrape time",
			body: "node_cpu_usage_seconds_total 1\nnode_memory_working_set_bytes 2\n" +
				`container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} 3` + "\n" +
				`container_memory_working_set_bytes{container="c",namespace="n",pod="p"} 4` + "\n",
			want: parsed{nodeCPU: 1, nodeCPUTS: nowNanos, nodeMemory: 2, nodeHas: both, containers: []string{"n/p/c 3@" + now + " 4 3"}},
		},
		{
			name: "label order, spacing, extra labels, trailing comma, CRLF, escapes",
			body: "  node_cpu_usage_seconds_total{} 1 1700000000123\r\n" +
				"node_memory_working_set_bytes\t2\n" +
				"\n" +
				`container_cpu_usage_seconds_total{ pod = "p\"q" , namespace="n\\s",container="c\nd",id="/x",} 3 1700000000123` + "\n" +
				`container_memory_working_set_bytes{namespace="n\\s",pod="p\"q",container="c\nd"} 4 1700000000123` + "\n",
			want: parsed{nodeCPU: 1, nodeCPUTS: tsNanos, nodeMemory: 2, nodeHas: both, containers: []string{"n\\s/p\"q/c\nd 3@" + ts + " 4 3"}},
		},
		{
			name: "exponents and special values",
			body: "node_cpu_usage_seconds_total 1.5E+3 1700000000123\n" +
				"node_memory_working_set_bytes 2e9\n" +
				`container_cpu_usage_seconds_total{container="a",namespace="n",pod="p"} 1.25e-1 1700000000123` + "\n" +
				`container_memory_working_set_bytes{container="a",namespace="n",pod="p"} NaN 1700000000123` + "\n" +
				`container_cpu_usage_seconds_total{container="b",namespace="n",pod="p"} +Inf 1700000000123` + "\n" +
				`container_memory_working_set_bytes{container="b",namespace="n",pod="p"} -1 1700000000123` + "\n",
			want: parsed{nodeCPU: 1500, nodeCPUTS: tsNanos, nodeMemory: 2e9, nodeHas: both, containers: []string{"n/p/a 0.125@" + ts + " 0 1"}},
		},
		{
			name: "NaN node usage counts as missing",
			body: "node_cpu_usage_seconds_total NaN\nnode_memory_working_set_bytes 2\n",
			want: parsed{nodeMemory: 2, nodeHas: hasMemory},
		},
		{
			name: "memory family before cpu family, containers missing on either side, duplicates",
			body: `container_memory_working_set_bytes{container="a",namespace="n",pod="p"} 1 1700000000123` + "\n" +
				`container_memory_working_set_bytes{container="b",namespace="n",pod="p"} 2 1700000000123` + "\n" +
				`container_memory_working_set_bytes{container="d",namespace="n",pod="p"} 4 1700000000123` + "\n" +
				`container_cpu_usage_seconds_total{container="a",namespace="n",pod="p"} 10 1700000000123` + "\n" +
				`container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} 30 1700000000123` + "\n" +
				`container_cpu_usage_seconds_total{container="d",namespace="n",pod="p"} 40 1700000000123` + "\n" +
				`container_cpu_usage_seconds_total{container="a",namespace="n",pod="p"} 11 1700000000123` + "\n",
			want: parsed{containers: []string{
				"n/p/a 11@" + ts + " 1 3",
				"n/p/b 0@0 2 2",
				"n/p/c 30@" + ts + " 0 1",
				"n/p/d 40@" + ts + " 4 3",
			}},
		},
		{
			name: "scrape error",
			body: "resource_scrape_error 1\nscrape_error 1\n",
			want: parsed{scrapeError: true},
		},
		{
			name: "unknown series are skipped without validation of their labels",
			body: "some_metric{weird=\"}\"} 1\nother 2\nutf8_name_follows 1\n{\"my.metric\",a=\"b\"} 1\n",
			want: parsed{},
		},
		{name: "html", body: "<html><body>Unauthorized</body></html>\n", wantErr: "invalid metric name"},
		{name: "binary garbage", body: "\x00\x01\x02garbage\n", wantErr: "invalid metric name"},
		{name: "name without value", body: "node_cpu_usage_seconds_total\n", wantErr: "missing value"},
		{name: "unknown name glued to junk", body: "foo=bar\n", wantErr: "invalid sample line"},
		{name: "truncated last line", body: "node_memory_working_set_bytes 2\nnode_cpu_usage_seconds_total 1 17000", wantErr: "truncated"},
		{name: "truncated labels", body: `container_cpu_usage_seconds_total{container="a",namesp` + "\n", wantErr: "label"},
		{name: "unterminated label value", body: `container_cpu_usage_seconds_total{container="a} 1` + "\n", wantErr: "unterminated label value"},
		{name: "bad escape", body: `container_cpu_usage_seconds_total{container="a\t",namespace="n",pod="p"} 1` + "\n", wantErr: "escape"},
		{name: "bad value", body: "node_cpu_usage_seconds_total 1,5\n", wantErr: "invalid value"},
		{name: "bad timestamp", body: "node_cpu_usage_seconds_total 1 17e11\n", wantErr: "invalid timestamp"},
		{name: "negative timestamp", body: "node_cpu_usage_seconds_total 1 -5\n", wantErr: "invalid timestamp"},
		{name: "text after timestamp", body: "node_cpu_usage_seconds_total 1 1700000000123 x\n", wantErr: "after timestamp"},
		{name: "container sample without labels", body: `container_cpu_usage_seconds_total{container="a"} 1` + "\n", wantErr: "without namespace"},
		{name: "missing equals", body: `container_cpu_usage_seconds_total{container "a"} 1` + "\n", wantErr: "expected '='"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p parser
			err := p.parse([]byte(tc.body), nowNanos)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parse error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got := viewOf(&p)
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tc.want) {
				t.Errorf("parse mismatch\n got: %#v\nwant: %#v", got, tc.want)
			}
		})
	}
}

// A body that parses but lacks node usage (garbage words, an empty body, a
// kubelet that failed to collect stats) is a failed scrape.
func TestNextStateRequiresNodeUsage(t *testing.T) {
	for name, tc := range map[string]struct{ body, wantErr string }{
		"words":        {"hello world\n", "no node_cpu_usage_seconds_total"},
		"empty":        {"", "no node_cpu_usage_seconds_total"},
		"only memory":  {"node_memory_working_set_bytes 2\n", "no node_cpu_usage_seconds_total"},
		"scrape error": {"resource_scrape_error 1\n", "resource_scrape_error"},
	} {
		t.Run(name, func(t *testing.T) {
			var p parser
			if err := p.parse([]byte(tc.body), nowNanos); err != nil {
				t.Fatalf("parse: %v", err)
			}
			if _, err := nextState(nil, &p); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("nextState error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// benchPods returns n pods with two containers each, named like real pods.
func benchPods(n int, cpu float64) []scrapertest.PodSample {
	pods := make([]scrapertest.PodSample, n)
	for i := range pods {
		pods[i] = scrapertest.PodSample{
			Namespace: fmt.Sprintf("team-%d", i%7),
			Name:      fmt.Sprintf("app-%d-7c9d8f6b5d-%05d", i%13, i),
			Containers: []scrapertest.ContainerSample{
				{Name: "app", CPUSeconds: cpu + float64(i), MemoryBytes: 100<<20 + int64(i)},
				{Name: "istio-proxy", CPUSeconds: cpu/10 + float64(i), MemoryBytes: 40<<20 + int64(i)},
			},
		}
	}
	return pods
}

// BenchmarkParse parses a kubelet body for 110 pods × 2 containers with a
// reused parser, as the scraper does.
func BenchmarkParse(b *testing.B) {
	body := []byte(scrapertest.Body(123456.789, 12<<30, time.UnixMilli(tsMillis), benchPods(110, 1234.5678)...))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var p parser
	for b.Loop() {
		if err := p.parse(body, nowNanos); err != nil {
			b.Fatal(err)
		}
	}
	if len(p.recs) != 220 {
		b.Fatalf("parsed %d containers, want 220", len(p.recs))
	}
}

// BenchmarkParseAndMerge is the per-node work of a steady-state cycle: parse
// and build the next state from the previous one.
func BenchmarkParseAndMerge(b *testing.B) {
	bodies := [2][]byte{
		[]byte(scrapertest.Body(123456.789, 12<<30, time.UnixMilli(tsMillis), benchPods(110, 1234.5678)...)),
		[]byte(scrapertest.Body(123466.789, 12<<30, time.UnixMilli(tsMillis+15000), benchPods(110, 1235.5678)...)),
	}
	b.ReportAllocs()
	var p parser
	var st *nodeState
	i := 0
	for b.Loop() {
		if err := p.parse(bodies[i%2], nowNanos); err != nil {
			b.Fatal(err)
		}
		var err error
		if st, err = nextState(st, &p); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestParseAgreesWithExpfmt checks the hand-written parser against the
// reference Prometheus text parser on kubelet-shaped bodies.
func TestParseAgreesWithExpfmt(t *testing.T) {
	bodies := map[string]string{
		"kubelet body": kubeletBody,
		"generated":    scrapertest.Body(123456.789, 12<<30, time.UnixMilli(tsMillis), benchPods(110, 1234.5678)...),
		"escaped labels": scrapertest.Body(1, 2, time.UnixMilli(tsMillis), scrapertest.PodSample{
			Namespace: `odd"ns`, Name: `back\slash`, Containers: []scrapertest.ContainerSample{{Name: "new\nline", CPUSeconds: 1e-9, MemoryBytes: 1}},
		}),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			families, err := testutil.TextToMetricFamilies(strings.NewReader(body))
			if err != nil {
				t.Fatalf("reference parser rejects the body: %v", err)
			}
			want := map[string]string{}
			for _, fam := range []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes"} {
				for _, m := range families[fam].GetMetric() {
					labels := map[string]string{}
					for _, l := range m.GetLabel() {
						labels[l.GetName()] = l.GetValue()
					}
					kind, value := "cpu", m.GetCounter().GetValue()
					if fam == "container_memory_working_set_bytes" {
						kind, value = "mem", m.GetGauge().GetValue()
					}
					key := labels["namespace"] + "/" + labels["pod"] + "/" + labels["container"]
					want[key] += fmt.Sprintf("%s=%g@%d ", kind, value, m.GetTimestampMs())
				}
			}

			var p parser
			if err := p.parse([]byte(body), nowNanos); err != nil {
				t.Fatal(err)
			}
			if len(p.recs) != len(want) {
				t.Fatalf("parsed %d containers, reference %d", len(p.recs), len(want))
			}
			for _, r := range p.recs {
				key := string(r.namespace) + "/" + string(r.pod) + "/" + string(r.name)
				got := fmt.Sprintf("cpu=%g@%d mem=%g@%d ", r.cpu, r.cpuTS/1e6, r.memory, r.cpuTS/1e6)
				if got != want[key] {
					t.Errorf("%q: got %q, reference %q", key, got, want[key])
				}
			}
			node := families["node_cpu_usage_seconds_total"].GetMetric()[0]
			if p.nodeCPU != node.GetCounter().GetValue() || p.nodeCPUTS/1e6 != node.GetTimestampMs() {
				t.Errorf("node cpu = %g@%d, reference %g@%d", p.nodeCPU, p.nodeCPUTS/1e6, node.GetCounter().GetValue(), node.GetTimestampMs())
			}
			if mem := families["node_memory_working_set_bytes"].GetMetric()[0].GetGauge().GetValue(); p.nodeMemory != mem {
				t.Errorf("node memory = %g, reference %g", p.nodeMemory, mem)
			}
		})
	}
}
