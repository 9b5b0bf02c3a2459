package node

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Thresholds are the hard eviction thresholds the pressure conditions
// follow (the kubelet's --eviction-hard signals memory.available and
// nodefs.available): under them the node reports MemoryPressure or
// DiskPressure, which the node lifecycle controller turns into taints, and
// the agent evicts pods to relieve them (package pods).
type Thresholds struct {
	// MemoryAvailable in bytes.
	MemoryAvailable int64
	// NodefsAvailable as a fraction of the filesystem (0.1 for 10%), or
	// NodefsAvailableBytes when given as a quantity.
	NodefsAvailable      float64
	NodefsAvailableBytes int64
}

// DefaultEvictionHard are the kubelet's defaults for the signals the agent reads.
const DefaultEvictionHard = "memory.available<100Mi,nodefs.available<10%"

// ParseEvictionHard reads "signal<quantity|percent" pairs, as the kubelet's flag.
func ParseEvictionHard(v string) (Thresholds, error) {
	var t Thresholds
	for _, kv := range strings.Split(v, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		signal, value, ok := strings.Cut(kv, "<")
		if !ok {
			return t, fmt.Errorf("--eviction-hard %q: want signal<value", kv)
		}
		pct, isPct := strings.CutSuffix(value, "%")
		switch signal {
		case "memory.available":
			q, err := resource.ParseQuantity(value)
			if err != nil || isPct {
				return t, fmt.Errorf("--eviction-hard %s: want a quantity such as 100Mi", kv)
			}
			t.MemoryAvailable = q.Value()
		case "nodefs.available":
			if isPct {
				f, err := strconv.ParseFloat(pct, 64)
				if err != nil || f < 0 || f > 100 {
					return t, fmt.Errorf("--eviction-hard %s: want a percentage in [0, 100]", kv)
				}
				t.NodefsAvailable = f / 100
				continue
			}
			q, err := resource.ParseQuantity(value)
			if err != nil {
				return t, fmt.Errorf("--eviction-hard %s: want a quantity or a percentage", kv)
			}
			t.NodefsAvailableBytes = q.Value()
		case "imagefs.available", "nodefs.inodesFree", "imagefs.inodesFree", "pid.available":
			// Accepted for compatibility with kubelet configurations; not observed yet.
		default:
			return t, fmt.Errorf("--eviction-hard %s: unknown signal %q", kv, signal)
		}
	}
	return t, nil
}

// MachinePressure observes this machine: MemAvailable from /proc/meminfo
// and the free space of the filesystem holding Dir.
type MachinePressure struct {
	Thresholds
	Dir string
}

// Breach is an eviction signal under its threshold: what the node is short
// of, and the resource pods are ranked by to relieve it.
type Breach struct {
	Signal               string // memory.available, nodefs.available
	Resource             corev1.ResourceName
	Threshold, Available resource.Quantity
}

// Breaches lists the signals under their thresholds, memory first (the
// kubelet relieves memory before disk).
func (m MachinePressure) Breaches() []Breach {
	var out []Breach
	if avail, ok := memAvailable(); ok && m.MemoryAvailable > 0 && avail < m.MemoryAvailable {
		out = append(out, Breach{Signal: "memory.available", Resource: corev1.ResourceMemory,
			Threshold: *resource.NewQuantity(m.MemoryAvailable, resource.BinarySI), Available: *resource.NewQuantity(avail, resource.BinarySI)})
	}
	var fs syscall.Statfs_t
	if m.Dir != "" && syscall.Statfs(m.Dir, &fs) == nil && fs.Blocks > 0 {
		free := int64(fs.Bavail) * fs.Bsize
		threshold := m.NodefsAvailableBytes
		if m.NodefsAvailable > 0 {
			threshold = max(threshold, int64(m.NodefsAvailable*float64(fs.Blocks))*fs.Bsize)
		}
		if threshold > 0 && free < threshold {
			out = append(out, Breach{Signal: "nodefs.available", Resource: corev1.ResourceEphemeralStorage,
				Threshold: *resource.NewQuantity(threshold, resource.BinarySI), Available: *resource.NewQuantity(free, resource.BinarySI)})
		}
	}
	return out
}

// Pressure implements Pressure.
func (m MachinePressure) Pressure() (memory, disk, pid bool) {
	for _, b := range m.Breaches() {
		memory = memory || b.Resource == corev1.ResourceMemory
		disk = disk || b.Resource == corev1.ResourceEphemeralStorage
	}
	return memory, disk, false
}

func memAvailable() (int64, bool) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err == nil
		}
	}
	return 0, false
}
