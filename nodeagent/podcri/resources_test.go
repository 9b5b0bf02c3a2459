package podcri

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestLinuxResources(t *testing.T) {
	res := func(req, lim corev1.ResourceList) corev1.Container {
		return corev1.Container{Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
	}
	q := resource.MustParse
	for _, tc := range []struct {
		name               string
		c                  corev1.Container
		shares, quota, mem int64
	}{
		{"best effort", res(nil, nil), 2, 0, 0},
		{"request only", res(corev1.ResourceList{"cpu": q("250m")}, nil), 256, 0, 0},
		{"tiny request", res(corev1.ResourceList{"cpu": q("1m")}, nil), 2, 0, 0},
		{"limit only counts as request", res(nil, corev1.ResourceList{"cpu": q("500m"), "memory": q("64Mi")}), 512, 50000, 64 << 20},
		{"guaranteed 2 cpu", res(corev1.ResourceList{"cpu": q("2")}, corev1.ResourceList{"cpu": q("2"), "memory": q("1Gi")}), 2048, 200000, 1 << 30},
		{"minimum quota", res(nil, corev1.ResourceList{"cpu": q("1m")}), 2, 1000, 0},
	} {
		r := LinuxResources(tc.c)
		if r.CpuShares != tc.shares || r.CpuQuota != tc.quota || r.MemoryLimitInBytes != tc.mem || (tc.quota > 0) != (r.CpuPeriod == 100000) {
			t.Errorf("%s: shares %d quota %d period %d mem %d; want %d %d %d", tc.name, r.CpuShares, r.CpuQuota, r.CpuPeriod, r.MemoryLimitInBytes, tc.shares, tc.quota, tc.mem)
		}
	}
}
