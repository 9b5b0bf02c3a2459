package podcri

import (
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CFS constants the kubelet uses: shares per CPU, the quota period.
const (
	SharesPerCPU  = 1024
	MinShares     = 2
	QuotaPeriodUs = 100000
	MinQuotaUs    = 1000
)

// LinuxResources maps a container's requests and limits to the CRI Linux
// resources the kubelet sets: cpu.shares from the request (limit when no
// request), a CFS quota from the cpu limit, and the memory limit.
func LinuxResources(c corev1.Container) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{}
	cpuReq, hasReq := c.Resources.Requests[corev1.ResourceCPU]
	cpuLim, hasLim := c.Resources.Limits[corev1.ResourceCPU]
	milli := int64(0)
	switch {
	case hasReq:
		milli = cpuReq.MilliValue()
	case hasLim:
		milli = cpuLim.MilliValue()
	}
	r.CpuShares = max(milli*SharesPerCPU/1000, MinShares)
	if hasLim {
		r.CpuPeriod = QuotaPeriodUs
		r.CpuQuota = max(cpuLim.MilliValue()*QuotaPeriodUs/1000, MinQuotaUs)
	}
	if mem, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		r.MemoryLimitInBytes = mem.Value()
	}
	return r
}
