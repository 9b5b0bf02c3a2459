package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// statsProvider reads container usage from the runtime (CRI
// ListContainerStats) and the node's from /proc, for /metrics/resource (the
// format metrics-server and kubeparts-apiserver scrape) and /stats/summary.
//
// The node's working set is MemTotal - MemAvailable: the kubelet reads the
// root cgroup through cAdvisor (usage minus inactive file pages), which
// /proc/meminfo approximates without a cgroup walk.
type statsProvider struct {
	node    string
	runtime internalapi.RuntimeService
	pods    corelisters.PodLister
	proc    string // /proc, replaceable in tests
}

func newStatsProvider(node string, rt internalapi.RuntimeService, pods corelisters.PodLister) *statsProvider {
	return &statsProvider{node: node, runtime: rt, pods: pods, proc: "/proc"}
}

type containerUsage struct {
	namespace, pod, uid, name string
	started                   time.Time
	at                        time.Time
	cpuSeconds                float64
	nanoCores                 uint64
	workingSet                uint64
}

// containers is the usage of every running container of the runtime that
// belongs to a pod (the agent's labels).
func (p *statsProvider) containers(ctx context.Context) ([]containerUsage, error) {
	running := &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}
	list, err := p.runtime.ListContainers(ctx, running)
	if err != nil {
		return nil, err
	}
	created := map[string]int64{}
	for _, c := range list {
		created[c.Id] = c.CreatedAt
	}
	stats, err := p.runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
	if err != nil {
		return nil, err
	}
	var out []containerUsage
	for _, s := range stats {
		a := s.GetAttributes()
		createdAt, ok := created[a.GetId()]
		if !ok || a.GetLabels()[labelUID] == "" {
			continue // not running, or not a pod's
		}
		u := containerUsage{namespace: a.GetLabels()["io.kubernetes.pod.namespace"], pod: a.GetLabels()["io.kubernetes.pod.name"],
			uid: a.GetLabels()[labelUID], name: a.GetMetadata().GetName(), started: time.Unix(0, createdAt)}
		if cpu := s.GetCpu(); cpu != nil {
			u.at = time.Unix(0, cpu.Timestamp)
			u.cpuSeconds = float64(cpu.GetUsageCoreNanoSeconds().GetValue()) / 1e9
			u.nanoCores = cpu.GetUsageNanoCores().GetValue()
		}
		if mem := s.GetMemory(); mem != nil {
			u.workingSet = mem.GetWorkingSetBytes().GetValue()
			if u.at.IsZero() {
				u.at = time.Unix(0, mem.Timestamp)
			}
		}
		if u.at.IsZero() {
			u.at = time.Now()
		}
		out = append(out, u)
	}
	return out, nil
}

type nodeUsage struct {
	cpuSeconds        float64
	workingSet, total uint64
	available         uint64
	bootTime, at      time.Time
}

func (p *statsProvider) nodeUsage() (nodeUsage, error) {
	n := nodeUsage{at: time.Now()}
	stat, err := os.Open(p.proc + "/stat")
	if err != nil {
		return n, err
	}
	defer stat.Close()
	s := bufio.NewScanner(stat)
	for s.Scan() {
		f := strings.Fields(s.Text())
		switch {
		case len(f) > 8 && f[0] == "cpu":
			// user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
			var busy uint64
			for _, i := range []int{1, 2, 3, 6, 7, 8} {
				v, _ := strconv.ParseUint(f[i], 10, 64)
				busy += v
			}
			n.cpuSeconds = float64(busy) / 100 // USER_HZ is 100 on Linux
		case len(f) == 2 && f[0] == "btime":
			sec, _ := strconv.ParseInt(f[1], 10, 64)
			n.bootTime = time.Unix(sec, 0)
		}
	}
	mem, err := os.ReadFile(p.proc + "/meminfo")
	if err != nil {
		return n, err
	}
	for _, line := range strings.Split(string(mem), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "MemTotal:":
			n.total = kb * 1024
		case "MemAvailable:":
			n.available = kb * 1024
		}
	}
	if n.total == 0 {
		return n, fmt.Errorf("no MemTotal in %s/meminfo", p.proc)
	}
	n.workingSet = n.total - min(n.available, n.total)
	return n, nil
}

var (
	descContainerCPU   = prometheus.NewDesc("container_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the container in core-seconds", []string{"container", "pod", "namespace"}, nil)
	descContainerMem   = prometheus.NewDesc("container_memory_working_set_bytes", "[STABLE] Current working set of the container in bytes", []string{"container", "pod", "namespace"}, nil)
	descContainerStart = prometheus.NewDesc("container_start_time_seconds", "[STABLE] Start time of the container since unix epoch in seconds", []string{"container", "pod", "namespace"}, nil)
	descPodCPU         = prometheus.NewDesc("pod_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds", []string{"pod", "namespace"}, nil)
	descPodMem         = prometheus.NewDesc("pod_memory_working_set_bytes", "[STABLE] Current working set of the pod in bytes", []string{"pod", "namespace"}, nil)
	descNodeCPU        = prometheus.NewDesc("node_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the node in core-seconds", nil, nil)
	descNodeMem        = prometheus.NewDesc("node_memory_working_set_bytes", "[STABLE] Current working set of the node in bytes", nil, nil)
	descScrapeError    = prometheus.NewDesc("resource_scrape_error", "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
)

func (p *statsProvider) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descContainerCPU, descContainerMem, descContainerStart, descPodCPU, descPodMem, descNodeCPU, descNodeMem, descScrapeError} {
		ch <- d
	}
}

// Collect emits the kubelet's resource metrics, each with the time its
// sample was taken, which consumers use to compute rates.
func (p *statsProvider) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	scrapeError := 0.0
	if n, err := p.nodeUsage(); err == nil {
		ch <- prometheus.NewMetricWithTimestamp(n.at, prometheus.MustNewConstMetric(descNodeCPU, prometheus.CounterValue, n.cpuSeconds))
		ch <- prometheus.NewMetricWithTimestamp(n.at, prometheus.MustNewConstMetric(descNodeMem, prometheus.GaugeValue, float64(n.workingSet)))
	} else {
		scrapeError = 1
	}
	cs, err := p.containers(ctx)
	if err != nil {
		scrapeError = 1
	}
	type podKey struct{ ns, name string }
	pods := map[podKey]*containerUsage{}
	for _, c := range cs {
		ch <- prometheus.NewMetricWithTimestamp(c.at, prometheus.MustNewConstMetric(descContainerCPU, prometheus.CounterValue, c.cpuSeconds, c.name, c.pod, c.namespace))
		ch <- prometheus.NewMetricWithTimestamp(c.at, prometheus.MustNewConstMetric(descContainerMem, prometheus.GaugeValue, float64(c.workingSet), c.name, c.pod, c.namespace))
		ch <- prometheus.MustNewConstMetric(descContainerStart, prometheus.GaugeValue, float64(c.started.UnixNano())/1e9, c.name, c.pod, c.namespace)
		k := podKey{c.namespace, c.pod}
		if pods[k] == nil {
			pods[k] = &containerUsage{at: c.at}
		}
		pods[k].cpuSeconds += c.cpuSeconds
		pods[k].workingSet += c.workingSet
	}
	for k, u := range pods {
		ch <- prometheus.NewMetricWithTimestamp(u.at, prometheus.MustNewConstMetric(descPodCPU, prometheus.CounterValue, u.cpuSeconds, k.name, k.ns))
		ch <- prometheus.NewMetricWithTimestamp(u.at, prometheus.MustNewConstMetric(descPodMem, prometheus.GaugeValue, float64(u.workingSet), k.name, k.ns))
	}
	ch <- prometheus.MustNewConstMetric(descScrapeError, prometheus.GaugeValue, scrapeError)
}

// summary is the kubelet's /stats/summary for the node and its pods' CPU
// and memory (filesystem, network and volume stats are not collected).
func (p *statsProvider) summary(ctx context.Context) (*statsapi.Summary, error) {
	n, err := p.nodeUsage()
	if err != nil {
		return nil, err
	}
	cs, err := p.containers(ctx)
	if err != nil {
		return nil, err
	}
	at := metav1.NewTime(n.at)
	cpuNs := uint64(n.cpuSeconds * 1e9)
	avail := n.available
	sum := &statsapi.Summary{Node: statsapi.NodeStats{NodeName: p.node, StartTime: metav1.NewTime(n.bootTime),
		CPU:    &statsapi.CPUStats{Time: at, UsageCoreNanoSeconds: &cpuNs},
		Memory: &statsapi.MemoryStats{Time: at, WorkingSetBytes: &n.workingSet, AvailableBytes: &avail, UsageBytes: &n.workingSet}}}
	byPod := map[string]int{}
	for _, c := range cs {
		i, ok := byPod[c.uid]
		if !ok {
			i = len(sum.Pods)
			byPod[c.uid] = i
			ps := statsapi.PodStats{PodRef: statsapi.PodReference{Name: c.pod, Namespace: c.namespace, UID: c.uid},
				CPU:    &statsapi.CPUStats{Time: metav1.NewTime(c.at), UsageCoreNanoSeconds: new(uint64), UsageNanoCores: new(uint64)},
				Memory: &statsapi.MemoryStats{Time: metav1.NewTime(c.at), WorkingSetBytes: new(uint64)}}
			if pod, err := p.pods.Pods(c.namespace).Get(c.pod); err == nil && pod.Status.StartTime != nil {
				ps.StartTime = *pod.Status.StartTime
			}
			sum.Pods = append(sum.Pods, ps)
		}
		ps := &sum.Pods[i]
		cpu, cores, ws := uint64(c.cpuSeconds*1e9), c.nanoCores, c.workingSet
		*ps.CPU.UsageCoreNanoSeconds += cpu
		*ps.CPU.UsageNanoCores += cores
		*ps.Memory.WorkingSetBytes += ws
		ps.Containers = append(ps.Containers, statsapi.ContainerStats{Name: c.name, StartTime: metav1.NewTime(c.started),
			CPU:    &statsapi.CPUStats{Time: metav1.NewTime(c.at), UsageCoreNanoSeconds: &cpu, UsageNanoCores: &cores},
			Memory: &statsapi.MemoryStats{Time: metav1.NewTime(c.at), WorkingSetBytes: &ws}})
	}
	return sum, nil
}

func (s *Server) serveSummary(w http.ResponseWriter, r *http.Request) {
	sum, err := s.stats.summary(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(sum)
}
