package pods

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/kubeparts/kubeparts/nodeagent/podcri"
)

// The kubelet's cgroup layout per QoS class, under the node's pods cgroup:
// Guaranteed pods directly, Burstable and BestEffort pods in a cgroup of
// their class, whose CPU weight ranks the classes under contention
// (BestEffort the least possible, Burstable the sum of its pods' requests).

// qosClass is the pod's QoS class: the one the API server recorded, else
// computed with the API's rules (CPU and memory of every container; all
// limits equal to requests: Guaranteed; none at all: BestEffort).
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	any, guaranteed := false, true
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := c.Resources.Requests[r]
				lim, hasLim := c.Resources.Limits[r]
				if (hasReq && !req.IsZero()) || (hasLim && !lim.IsZero()) {
					any = true
				}
				if !hasLim || (hasReq && req.Cmp(lim) != 0) {
					guaranteed = false
				}
			}
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// updateQoSCgroups sets the CPU weight of the BestEffort and Burstable
// cgroups of each real node from its running pods, as the kubelet's QoS
// manager does periodically.
func (m *Manager) updateQoSCgroups() error {
	pods, err := m.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	burstable := map[string]int64{}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || qosClass(p) != corev1.PodQOSBurstable {
			continue
		}
		for _, c := range p.Spec.Containers {
			burstable[p.Spec.NodeName] += podcri.LinuxResources(c).CpuShares
		}
	}
	var errs []string
	for name, n := range m.nodes {
		if n.CgroupParent == "" || n.Simulated {
			continue
		}
		for class, shares := range map[string]int64{"besteffort": podcri.MinShares, "burstable": max(burstable[name], podcri.MinShares)} {
			if err := setCPUShares(n.qosCgroupPath(class), shares); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("QoS cgroups: %s", strings.Join(errs, "; "))
	}
	return nil
}

// setCPUShares creates cgroup (a path in the cgroupfs hierarchy) in the
// cpu controller and sets its weight: cpu.shares on cgroup v1, the
// equivalent cpu.weight on v2.
func setCPUShares(cgroup string, shares int64) error {
	root, v2, err := controllerRoot("cpu")
	if err != nil {
		return err
	}
	dir := filepath.Join(root, cgroup)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if v2 {
		weight := 1 + ((shares-2)*9999)/262142
		return os.WriteFile(filepath.Join(dir, "cpu.weight"), []byte(fmt.Sprint(weight)), 0o644)
	}
	return os.WriteFile(filepath.Join(dir, "cpu.shares"), []byte(fmt.Sprint(shares)), 0o644)
}

// controllerRoot is where a cgroup controller is mounted: the cgroup v1
// hierarchy that has it, else the unified (v2) one.
func controllerRoot(controller string) (string, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	unified := ""
	s := bufio.NewScanner(f)
	for s.Scan() {
		// "... mountpoint ... - fstype source superoptions"
		fields := strings.Fields(s.Text())
		i := slices.Index(fields, "-")
		if i < 5 || i+3 >= len(fields) {
			continue
		}
		fstype, opts := fields[i+1], fields[i+3]
		switch fstype {
		case "cgroup":
			for _, o := range strings.Split(opts, ",") {
				if o == controller {
					return fields[4], false, nil
				}
			}
		case "cgroup2":
			unified = fields[4]
		}
	}
	if unified != "" {
		return unified, true, nil
	}
	return "", false, fmt.Errorf("no cgroup hierarchy with the %s controller", controller)
}

// setPodCgroup limits the pod's cgroup as the kubelet's pod container
// manager does: CPU weight from the pod's requests, a CFS quota and a memory
// limit from its limits when every container sets them (init containers,
// sidecars and overhead counted as the API's resource helpers count them).
func setPodCgroup(cgroup string, pod *corev1.Pod) error {
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	limits := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	cpuReq := requests[corev1.ResourceCPU]
	shares := max(cpuReq.MilliValue()*podcri.SharesPerCPU/1000, podcri.MinShares)
	cpuLim, hasCPULimit := limits[corev1.ResourceCPU]
	memLim, hasMemLimit := limits[corev1.ResourceMemory]
	everyContainer := func(r corev1.ResourceName) bool {
		for _, c := range pod.Spec.Containers {
			if _, ok := c.Resources.Limits[r]; !ok {
				return false
			}
		}
		return true
	}
	cpuRoot, v2, err := controllerRoot("cpu")
	if err != nil {
		return err
	}
	dir := filepath.Join(cpuRoot, cgroup)
	files := map[string]string{}
	quota := int64(-1)
	if hasCPULimit && everyContainer(corev1.ResourceCPU) {
		quota = max(cpuLim.MilliValue()*podcri.QuotaPeriodUs/1000, podcri.MinQuotaUs)
	}
	if v2 {
		files["cpu.weight"] = fmt.Sprint(1 + ((shares-2)*9999)/262142)
		if quota > 0 {
			files["cpu.max"] = fmt.Sprintf("%d %d", quota, podcri.QuotaPeriodUs)
		}
		if hasMemLimit && everyContainer(corev1.ResourceMemory) {
			files["memory.max"] = fmt.Sprint(memLim.Value())
		}
		return writeCgroupFiles(dir, files)
	}
	files["cpu.shares"] = fmt.Sprint(shares)
	if quota > 0 {
		files["cpu.cfs_period_us"] = fmt.Sprint(podcri.QuotaPeriodUs)
		files["cpu.cfs_quota_us"] = fmt.Sprint(quota)
	}
	if err := writeCgroupFiles(dir, files); err != nil {
		return err
	}
	if hasMemLimit && everyContainer(corev1.ResourceMemory) {
		memRoot, _, err := controllerRoot("memory")
		if err != nil {
			return err
		}
		return writeCgroupFiles(filepath.Join(memRoot, cgroup), map[string]string{"memory.limit_in_bytes": fmt.Sprint(memLim.Value())})
	}
	return nil
}

// writeCgroupFiles creates the cgroup directory if needed and writes the
// files (the period before the quota: a map has no order, so in name order).
func writeCgroupFiles(dir string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(files[n]), 0o644); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, n), err)
		}
	}
	return nil
}
