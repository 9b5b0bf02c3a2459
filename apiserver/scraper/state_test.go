package scraper

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/kubeparts/kubeparts/apiserver/scraper/scrapertest"
)

func TestCPUCounterNext(t *testing.T) {
	const s = int64(time.Second)
	tests := []struct {
		name       string
		prev       cpuCounter
		ts         int64
		total      uint64
		want       cpuCounter
		wantString string // the rate as the API shows it, when ready
	}{
		{
			name:  "first sample has no rate",
			ts:    10 * s,
			total: 5e9,
			want:  cpuCounter{ts: 10 * s, total: 5e9},
		},
		{
			name:       "two samples give nanocores",
			prev:       cpuCounter{ts: 10 * s, total: 5e9},
			ts:         20 * s,
			total:      5e9 + 120e6, // 0.12 core-seconds in 10s
			want:       cpuCounter{ts: 20 * s, total: 5e9 + 120e6, rate: 12e6, window: 10 * s},
			wantString: "12m",
		},
		{
			name:       "fractional rate keeps nanocore precision",
			prev:       cpuCounter{ts: 10 * s, total: 1e9},
			ts:         25 * s,
			total:      1e9 + 1234567,
			want:       cpuCounter{ts: 25 * s, total: 1e9 + 1234567, rate: 82304, window: 15 * s},
			wantString: "82304n",
		},
		{
			name:       "idle container has a zero rate",
			prev:       cpuCounter{ts: 10 * s, total: 1e9},
			ts:         20 * s,
			total:      1e9,
			want:       cpuCounter{ts: 20 * s, total: 1e9, rate: 0, window: 10 * s},
			wantString: "0",
		},
		{
			name:  "counter went backwards: restart, start over",
			prev:  cpuCounter{ts: 10 * s, total: 5e9, rate: 7, window: 10 * s},
			ts:    20 * s,
			total: 1e9,
			want:  cpuCounter{ts: 20 * s, total: 1e9},
		},
		{
			name:  "timestamp went backwards: start over",
			prev:  cpuCounter{ts: 10 * s, total: 5e9, rate: 7, window: 10 * s},
			ts:    5 * s,
			total: 6e9,
			want:  cpuCounter{ts: 5 * s, total: 6e9},
		},
		{
			name:  "same timestamp as the only sample: still no rate",
			prev:  cpuCounter{ts: 10 * s, total: 5e9},
			ts:    10 * s,
			total: 5e9,
			want:  cpuCounter{ts: 10 * s, total: 5e9},
		},
		{
			name:       "same timestamp again keeps the current rate",
			prev:       cpuCounter{ts: 20 * s, total: 6e9, rate: 1e8, window: 10 * s},
			ts:         20 * s,
			total:      6e9,
			want:       cpuCounter{ts: 20 * s, total: 6e9, rate: 1e8, window: 10 * s},
			wantString: "100m",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.prev.next(tc.ts, tc.total)
			if got != tc.want {
				t.Fatalf("next = %+v, want %+v", got, tc.want)
			}
			if got.ready() != (tc.wantString != "") {
				t.Fatalf("ready = %v, want %v", got.ready(), tc.wantString != "")
			}
			if q := cpuQuantity(got.rate); tc.wantString != "" && q.String() != tc.wantString {
				t.Errorf("quantity = %s, want %s", q.String(), tc.wantString)
			}
		})
	}
}

// step is one scrape in a sequence: a body and what the state must serve.
type step struct {
	body     string
	wantNode string   // "cpu mem window" or "" for not served
	wantPods []string // "ns/name ts window c1=cpu/mem,..." of served pods
}

func TestNextStateSequence(t *testing.T) {
	t0 := time.UnixMilli(tsMillis)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	ctr := func(name string, cpu float64, mem int64) scrapertest.ContainerSample {
		return scrapertest.ContainerSample{Name: name, CPUSeconds: cpu, MemoryBytes: mem}
	}
	pod := func(ns, name string, cs ...scrapertest.ContainerSample) scrapertest.PodSample {
		return scrapertest.PodSample{Namespace: ns, Name: name, Containers: cs}
	}
	ms := func(t time.Time) string { return fmt.Sprint(t.UnixMilli()) }

	steps := []step{
		{ // first sample: nothing has a rate yet
			body: scrapertest.Body(100, 1<<30, sec(0),
				pod("default", "web", ctr("app", 10, 64<<20), ctr("proxy", 1, 16<<20)),
				pod("kube-system", "dns", ctr("coredns", 5, 20<<20))),
		},
		{ // second sample 10s later: everything served
			body: scrapertest.Body(100.5, 1<<30+4096, sec(10),
				pod("default", "web", ctr("app", 10.12, 65<<20), ctr("proxy", 1.01, 16<<20)),
				pod("kube-system", "dns", ctr("coredns", 5.002, 20<<20))),
			wantNode: "50m 1048580Ki 10s",
			wantPods: []string{
				"default/web " + ms(sec(10)) + " 10s app=12m/65Mi,proxy=1m/16Mi",
				"kube-system/dns " + ms(sec(10)) + " 10s coredns=200u/20Mi",
			},
		},
		{ // kubelet serves the same cached stats again: unchanged
			body: scrapertest.Body(100.5, 1<<30+4096, sec(10),
				pod("default", "web", ctr("app", 10.12, 65<<20), ctr("proxy", 1.01, 16<<20)),
				pod("kube-system", "dns", ctr("coredns", 5.002, 20<<20))),
			wantNode: "50m 1048580Ki 10s",
			wantPods: []string{
				"default/web " + ms(sec(10)) + " 10s app=12m/65Mi,proxy=1m/16Mi",
				"kube-system/dns " + ms(sec(10)) + " 10s coredns=200u/20Mi",
			},
		},
		{ // proxy restarted (counter reset) so web is hidden; dns deleted; a new pod appears
			body: scrapertest.Body(101.5, 1<<30, sec(25),
				pod("default", "web", ctr("app", 10.27, 66<<20), ctr("proxy", 0.001, 8<<20)),
				pod("default", "batch", ctr("job", 3, 1<<20))),
			wantNode: "66666667n 1Gi 15s",
		},
		{ // everything has two samples again
			body: scrapertest.Body(102.5, 1<<30, sec(35),
				pod("default", "web", ctr("app", 10.37, 66<<20), ctr("proxy", 0.011, 8<<20)),
				pod("default", "batch", ctr("job", 4, 1<<20))),
			wantNode: "100m 1Gi 10s",
			wantPods: []string{
				"default/batch " + ms(sec(35)) + " 10s job=100m/1Mi",
				"default/web " + ms(sec(35)) + " 10s app=10m/66Mi,proxy=1m/8Mi",
			},
		},
		{ // a sidecar is added to web: web waits until the sidecar has a rate
			body: scrapertest.Body(103.5, 1<<30, sec(45),
				pod("default", "web", ctr("app", 10.47, 66<<20), ctr("proxy", 0.021, 8<<20), ctr("logs", 1, 1<<20)),
				pod("default", "batch", ctr("job", 5, 1<<20))),
			wantNode: "100m 1Gi 10s",
			wantPods: []string{
				"default/batch " + ms(sec(45)) + " 10s job=100m/1Mi",
			},
		},
		{ // node counter reset (kubelet or node restart): node hidden
			body: scrapertest.Body(1, 1<<30, sec(55),
				pod("default", "web", ctr("app", 10.57, 66<<20), ctr("proxy", 0.031, 8<<20), ctr("logs", 1.1, 1<<20))),
			wantPods: []string{
				"default/web " + ms(sec(55)) + " 10s app=10m/66Mi,logs=10m/1Mi,proxy=1m/8Mi",
			},
		},
	}

	var st *nodeState
	for i, s := range steps {
		var p parser
		if err := p.parse([]byte(s.body), nowNanos); err != nil {
			t.Fatalf("step %d: parse: %v", i, err)
		}
		var err error
		if st, err = nextState(st, &p); err != nil {
			t.Fatalf("step %d: nextState: %v", i, err)
		}
		gotNode := ""
		if u, ok := st.usage("n"); ok {
			gotNode = fmt.Sprintf("%s %s %s", u.CPU.String(), u.Memory.String(), u.Window)
		}
		if gotNode != s.wantNode {
			t.Errorf("step %d: node = %q, want %q", i, gotNode, s.wantNode)
		}
		var gotPods []string
		for j := range st.pods {
			if u, ok := st.pods[j].usage(); ok {
				gotPods = append(gotPods, formatPod(u))
			}
		}
		if strings.Join(gotPods, "\n") != strings.Join(s.wantPods, "\n") {
			t.Errorf("step %d: pods\n got: %q\nwant: %q", i, gotPods, s.wantPods)
		}
	}
}

func formatPod(u PodUsage) string {
	var cs []string
	for _, c := range u.Containers {
		cs = append(cs, fmt.Sprintf("%s=%s/%s", c.Name, c.CPU.String(), c.Memory.String()))
	}
	return fmt.Sprintf("%s/%s %d %s %s", u.Namespace, u.Name, u.Timestamp.UnixMilli(), u.Window, strings.Join(cs, ","))
}

// Names are carried over between cycles rather than allocated again.
func TestNextStateReusesNames(t *testing.T) {
	body := func(cpu float64, at time.Time) []byte {
		return []byte(scrapertest.Body(cpu, 1<<30, at, benchPods(3, cpu)...))
	}
	var p parser
	if err := p.parse(body(10, time.UnixMilli(tsMillis)), nowNanos); err != nil {
		t.Fatal(err)
	}
	first, err := nextState(nil, &p)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.parse(body(11, time.UnixMilli(tsMillis+10000)), nowNanos); err != nil {
		t.Fatal(err)
	}
	second, err := nextState(first, &p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range second.pods {
		a, b := &first.pods[i], &second.pods[i]
		if !sameString(a.name, b.name) || !sameString(a.namespace, b.namespace) {
			t.Errorf("pod %d: names not reused", i)
		}
		for j := range b.containers {
			if !sameString(a.containers[j].name, b.containers[j].name) {
				t.Errorf("pod %d container %d: name not reused", i, j)
			}
		}
	}
}

// sameString reports whether a and b share their bytes (not just equal).
func sameString(a, b string) bool {
	return a == b && unsafe.StringData(a) == unsafe.StringData(b)
}

// TestMemoryPerNode measures the heap retained by the state of a node with
// 110 pods × 2 containers and keeps it well below the 2 MB budget.
func TestMemoryPerNode(t *testing.T) {
	perNode := retainedPerNode(t, 50)
	t.Logf("retained: %.0f bytes per node (110 pods × 2 containers)", perNode)
	if perNode > 100<<10 {
		t.Errorf("retained %.0f bytes per node, want < 100 KiB", perNode)
	}
}

func BenchmarkRetainedPerNode(b *testing.B) {
	var perNode float64
	for b.Loop() {
		perNode = retainedPerNode(b, 50)
	}
	b.ReportMetric(perNode, "B/node")
}

func retainedPerNode(tb testing.TB, nodes int) float64 {
	tb.Helper()
	bodies := [2][]byte{
		[]byte(scrapertest.Body(100, 1<<30, time.UnixMilli(tsMillis), benchPods(110, 1000)...)),
		[]byte(scrapertest.Body(101, 1<<30, time.UnixMilli(tsMillis+15000), benchPods(110, 1001)...)),
	}
	var p parser
	states := make([]*nodeState, nodes)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range states {
		for _, body := range bodies {
			if err := p.parse(body, nowNanos); err != nil {
				tb.Fatal(err)
			}
			st, err := nextState(states[i], &p)
			if err != nil {
				tb.Fatal(err)
			}
			states[i] = st
		}
	}
	p = parser{}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(states)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(nodes)
}
