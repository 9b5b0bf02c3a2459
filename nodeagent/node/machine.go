package node

import (
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// DefaultMaxPods is the kubelet's maxPods default.
const DefaultMaxPods = 110

// MachineCapacity is what this machine has, as the kubelet reports it: its
// CPUs, its memory (MemTotal), pods (maxPods) and ephemeral-storage, the
// size of the filesystem holding rootDir (the kubelet's root directory,
// where emptyDirs and container logs live).
func MachineCapacity(rootDir string, maxPods int64) corev1.ResourceList {
	out := corev1.ResourceList{
		corev1.ResourceCPU:  *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		corev1.ResourcePods: *resource.NewQuantity(maxPods, resource.DecimalSI),
	}
	if kb, ok := meminfo("MemTotal:"); ok {
		out[corev1.ResourceMemory] = *resource.NewQuantity(kb*1024, resource.BinarySI)
	}
	if total, ok := filesystemSize(rootDir); ok {
		out[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(total, resource.BinarySI)
	}
	return out
}

// filesystemSize is the size in bytes of the filesystem holding dir (or
// of its nearest existing parent: the directory may not exist yet).
func filesystemSize(dir string) (int64, bool) {
	for {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(dir, &fs); err == nil {
			return int64(fs.Blocks) * int64(fs.Bsize), fs.Blocks > 0
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return 0, false
		}
		dir = parent
	}
}

// meminfo reads one /proc/meminfo field, in kB.
func meminfo(field string) (int64, bool) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb, err == nil
		}
	}
	return 0, false
}

// Reserve is what the hard eviction thresholds keep from pods, as the
// kubelet subtracts them from allocatable: memory.available from memory,
// nodefs.available (a share of the capacity, or bytes) from ephemeral-storage.
func (t Thresholds) Reserve(capacity corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	if t.MemoryAvailable > 0 {
		out[corev1.ResourceMemory] = *resource.NewQuantity(t.MemoryAvailable, resource.BinarySI)
	}
	storage := t.NodefsAvailableBytes
	if c, ok := capacity[corev1.ResourceEphemeralStorage]; ok && t.NodefsAvailable > 0 {
		storage = max(storage, int64(t.NodefsAvailable*float64(c.Value())))
	}
	if storage > 0 {
		out[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(storage, resource.BinarySI)
	}
	return out
}

// SystemInfo is the machine's nodeInfo as the kubelet fills it from the
// host: OS image (os-release's PRETTY_NAME), kernel, machine ID, system
// UUID (DMI, when readable) and boot ID.
func SystemInfo() corev1.NodeSystemInfo {
	info := corev1.NodeSystemInfo{OperatingSystem: goruntime.GOOS, Architecture: goruntime.GOARCH,
		MachineID: firstLine("/etc/machine-id"), SystemUUID: firstLine("/sys/class/dmi/id/product_uuid"),
		BootID: firstLine("/proc/sys/kernel/random/boot_id"), KernelVersion: firstLine("/proc/sys/kernel/osrelease"), OSImage: osImage()}
	return info
}

func firstLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSpace(line)
}

// osImage is PRETTY_NAME of /etc/os-release (or /usr/lib/os-release).
func osImage() string {
	for _, path := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				if u, err := strconv.Unquote(v); err == nil {
					return u
				}
				return strings.Trim(v, `"'`)
			}
		}
	}
	return ""
}
