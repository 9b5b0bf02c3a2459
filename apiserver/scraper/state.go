package scraper

import (
	"errors"
	"math"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// cpuCounter follows one cumulative CPU counter. It keeps only the latest
// sample plus the rate derived from the sample before it, which is all the
// next scrape needs.
type cpuCounter struct {
	ts     int64  // unix nanoseconds of the latest sample; 0 = no sample
	total  uint64 // cumulative CPU time in nanoseconds at ts
	rate   uint64 // nanocores between the two latest samples
	window int64  // nanoseconds between those samples; 0 = no rate yet
}

// next folds in a new sample. A repeated timestamp (the kubelet serving the
// same cached stats twice) keeps the current rate; a timestamp or counter
// that went backwards (restart) starts over from the new sample.
func (c cpuCounter) next(ts int64, total uint64) cpuCounter {
	switch {
	case c.ts == 0:
		return cpuCounter{ts: ts, total: total}
	case ts == c.ts:
		return c
	case ts < c.ts, total < c.total:
		return cpuCounter{ts: ts, total: total}
	}
	dt := ts - c.ts
	rate := math.Round(float64(total-c.total) * 1e9 / float64(dt))
	return cpuCounter{ts: ts, total: total, rate: uint64(rate), window: dt}
}

func (c cpuCounter) ready() bool { return c.window > 0 }

// secondsToNanos converts the kubelet's core-seconds back to the
// nanosecond counter it was computed from.
func secondsToNanos(v float64) uint64 {
	return floatToUint64(v * 1e9)
}

// floatToUint64 rounds a non-negative sample value, saturating instead of
// relying on Go's implementation-defined overflowing conversion.
func floatToUint64(v float64) uint64 {
	if v >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(math.Round(v))
}

// Compact per-node state: about 56 bytes per container and 56 per pod plus
// the name strings, which are carried over from the previous state instead of
// being allocated again every cycle.
type containerState struct {
	name   string
	cpu    cpuCounter
	memory uint64
}

type podState struct {
	namespace, name string
	containers      []containerState // sorted by name
}

type nodeState struct {
	cpu    cpuCounter
	memory uint64
	pods   []podState // sorted by namespace, name
}

var errNoNodeMetrics = errors.New("response has no node_cpu_usage_seconds_total or node_memory_working_set_bytes sample")

// nextState builds a node's state from its previous state (nil if none) and a
// parsed body. It never modifies prev, which readers may still hold.
func nextState(prev *nodeState, p *parser) (*nodeState, error) {
	if p.nodeHas != hasCPU|hasMemory {
		if p.scrapeError {
			return nil, errors.New("kubelet reported resource_scrape_error and no node usage")
		}
		return nil, errNoNodeMetrics
	}
	st := &nodeState{memory: floatToUint64(p.nodeMemory)}
	var oldPods []podState
	if prev != nil {
		st.cpu = prev.cpu
		oldPods = prev.pods
	}
	st.cpu = st.cpu.next(p.nodeCPUTS, secondsToNanos(p.nodeCPU))

	recs := p.recs
	if len(recs) == 0 {
		return st, nil
	}
	npods := 1
	for i := 1; i < len(recs); i++ {
		if !samePod(&recs[i-1], &recs[i]) {
			npods++
		}
	}
	// One allocation for all pods and one for all containers of the node.
	st.pods = make([]podState, 0, npods)
	ctrs := make([]containerState, len(recs))

	j := 0 // merge cursor into oldPods, which is sorted like recs
	for i := 0; i < len(recs); {
		k := i + 1
		for k < len(recs) && samePod(&recs[i], &recs[k]) {
			k++
		}
		r := &recs[i]
		for j < len(oldPods) && comparePod(&oldPods[j], r) < 0 {
			j++
		}
		var old *podState
		if j < len(oldPods) && comparePod(&oldPods[j], r) == 0 {
			old = &oldPods[j]
		}

		pod := podState{containers: ctrs[i:k:k]}
		switch {
		case old != nil:
			pod.namespace, pod.name = old.namespace, old.name
		default:
			pod.name = string(r.pod)
			// Namespaces repeat across pods: reuse an existing string.
			if n := len(st.pods); n > 0 && st.pods[n-1].namespace == string(r.namespace) {
				pod.namespace = st.pods[n-1].namespace
			} else if j < len(oldPods) && oldPods[j].namespace == string(r.namespace) {
				pod.namespace = oldPods[j].namespace
			} else {
				pod.namespace = string(r.namespace)
			}
		}

		o := 0
		for x := i; x < k; x++ {
			rec := &recs[x]
			c := &ctrs[x]
			var oc *containerState
			if old != nil {
				for o < len(old.containers) && old.containers[o].name < string(rec.name) {
					o++
				}
				if o < len(old.containers) && old.containers[o].name == string(rec.name) {
					oc = &old.containers[o]
				}
			}
			if oc != nil {
				c.name, c.cpu = oc.name, oc.cpu
			} else {
				c.name = string(rec.name)
			}
			if rec.has&hasCPU != 0 {
				c.cpu = c.cpu.next(rec.cpuTS, secondsToNanos(rec.cpu))
			} else {
				c.cpu = cpuCounter{}
			}
			if rec.has&hasMemory != 0 {
				c.memory = floatToUint64(rec.memory)
			}
		}
		st.pods = append(st.pods, pod)
		i = k
	}
	return st, nil
}

func samePod(a, b *containerRecord) bool {
	return string(a.pod) == string(b.pod) && string(a.namespace) == string(b.namespace)
}

func comparePod(p *podState, r *containerRecord) int {
	return compareNames(p.namespace, p.name, string(r.namespace), string(r.pod))
}

func compareNames(ns1, n1, ns2, n2 string) int {
	switch {
	case ns1 < ns2:
		return -1
	case ns1 > ns2:
		return 1
	case n1 < n2:
		return -1
	case n1 > n2:
		return 1
	}
	return 0
}

// usage returns the node's usage once it has a rate and a working set.
func (st *nodeState) usage(name string) (NodeUsage, bool) {
	// Like metrics-server, a zero counter or working set means the kubelet
	// had no real data yet.
	if !st.cpu.ready() || st.cpu.total == 0 || st.memory == 0 {
		return NodeUsage{}, false
	}
	return NodeUsage{
		Name:      name,
		Timestamp: time.Unix(0, st.cpu.ts),
		Window:    time.Duration(st.cpu.window),
		CPU:       cpuQuantity(st.cpu.rate),
		Memory:    memoryQuantity(st.memory),
	}, true
}

// usage returns the pod's usage when every container has usage. The pod's
// timestamp and window are those of its oldest container sample.
func (p *podState) usage() (PodUsage, bool) {
	if len(p.containers) == 0 {
		return PodUsage{}, false
	}
	var ts, window int64
	for i := range p.containers {
		c := &p.containers[i]
		if !c.cpu.ready() || c.cpu.total == 0 || c.memory == 0 {
			return PodUsage{}, false
		}
		if ts == 0 || c.cpu.ts < ts {
			ts, window = c.cpu.ts, c.cpu.window
		}
	}
	out := PodUsage{
		Namespace:  p.namespace,
		Name:       p.name,
		Timestamp:  time.Unix(0, ts),
		Window:     time.Duration(window),
		Containers: make([]ContainerUsage, len(p.containers)),
	}
	for i := range p.containers {
		c := &p.containers[i]
		out.Containers[i] = ContainerUsage{Name: c.name, CPU: cpuQuantity(c.cpu.rate), Memory: memoryQuantity(c.memory)}
	}
	return out, true
}

func cpuQuantity(nanocores uint64) resource.Quantity {
	return *resource.NewScaledQuantity(clampInt64(nanocores), resource.Nano)
}

func memoryQuantity(bytes uint64) resource.Quantity {
	return *resource.NewQuantity(clampInt64(bytes), resource.BinarySI)
}

func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
