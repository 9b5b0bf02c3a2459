package pods

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// Local ephemeral storage limits, as the kubelet's eviction manager
// enforces them on every round whether or not the node is short of disk:
// a disk-backed emptyDir past its sizeLimit, a pod past the sum of its
// containers' ephemeral-storage limits, or a container past its own gets
// the pod evicted (Failed/Evicted, with the kubelet's message). What is
// counted is the kubelet's too: each container's writable layer (the
// runtime's stats) and logs, and the pod's disk-backed emptyDirs.

// nodeStorage measures the pods' local storage through the CRI and the
// node's directories.
type nodeStorage struct{ node Node }

// containers is each container's writable layer, by pod UID and name.
func (s nodeStorage) containers(ctx context.Context) (map[types.UID]map[string]int64, error) {
	usage, err := podUsage(ctx, s.node.Runtime)
	if err != nil {
		return nil, err
	}
	out := map[types.UID]map[string]int64{}
	for uid, cs := range usage {
		out[uid] = map[string]int64{}
		for name, u := range cs {
			layer := u[corev1.ResourceEphemeralStorage]
			out[uid][name] = layer.Value()
		}
	}
	return out, nil
}

// emptyDir is a disk-backed emptyDir's size.
func (s nodeStorage) emptyDir(uid types.UID, volume string) int64 {
	if s.node.PodDir == "" {
		return 0
	}
	return dirSize(filepath.Join(s.node.PodDir, string(uid), "volumes", "kubernetes.io~empty-dir", volume))
}

// logSize is what a pod's container logs take on the node.
func (s nodeStorage) logSize(pod *corev1.Pod, container string) int64 {
	if s.node.LogDir == "" {
		return 0
	}
	return dirSize(filepath.Join(s.node.LogDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID), container))
}

// dirSize sums the sizes of the files under dir (0 when it is missing).
func dirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}

// hasStorageLimits: the pod sets an ephemeral-storage limit or an emptyDir sizeLimit.
func hasStorageLimits(p *corev1.Pod) bool {
	for _, c := range p.Spec.Containers {
		if _, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]; ok {
			return true
		}
	}
	for _, v := range p.Spec.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil && v.EmptyDir.Medium != corev1.StorageMediumMemory {
			return true
		}
	}
	return false
}

// storageViolation says why pod is past a local storage limit, in the
// kubelet's words and order (emptyDirs, the pod, its containers); "" when
// it is not. containers maps each container to its usage (writable layer
// and logs).
func storageViolation(pod *corev1.Pod, containers map[string]int64, emptyDir func(volume string) int64) string {
	var podUse int64
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir == nil || v.EmptyDir.Medium == corev1.StorageMediumMemory {
			continue
		}
		used := emptyDir(v.Name)
		podUse += used
		if limit := v.EmptyDir.SizeLimit; limit != nil && used > limit.Value() {
			return fmt.Sprintf("Usage of EmptyDir volume %q exceeds the limit %q. ", v.Name, limit.String())
		}
	}
	var podLimit resource.Quantity
	limited := true
	for _, c := range pod.Spec.Containers {
		podUse += containers[c.Name]
		if l, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]; ok {
			podLimit.Add(l)
		} else {
			limited = false
		}
	}
	if limited && len(pod.Spec.Containers) > 0 && podUse > podLimit.Value() {
		return fmt.Sprintf("Pod ephemeral local storage usage exceeds the total limit of containers %s. ", podLimit.String())
	}
	for _, c := range pod.Spec.Containers {
		if l, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]; ok && containers[c.Name] > l.Value() {
			return fmt.Sprintf("Container %s exceeded its local ephemeral storage limit %q. ", c.Name, l.String())
		}
	}
	return ""
}

// evictOverStorage evicts the node's pods past a local storage limit.
func (m *Manager) evictOverStorage(ctx context.Context, n Node) {
	all, err := m.pods.List(labels.Everything())
	if err != nil {
		return
	}
	var limited []*corev1.Pod
	for _, p := range all {
		if p.Spec.NodeName != n.Name || p.DeletionTimestamp != nil || isTerminal(p) || !hasStorageLimits(p) {
			continue
		}
		if _, done := m.evictionOf(p.UID); !done {
			limited = append(limited, p)
		}
	}
	if len(limited) == 0 {
		return // no CRI call when no pod is limited
	}
	s := nodeStorage{n}
	usage, err := s.containers(ctx)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Reading container storage for local storage limits", "node", n.Name)
		return
	}
	for _, p := range limited {
		use := map[string]int64{}
		for _, c := range p.Spec.Containers {
			use[c.Name] = usage[p.UID][c.Name] + s.logSize(p, c.Name)
		}
		msg := storageViolation(p, use, func(v string) int64 { return s.emptyDir(p.UID, v) })
		if msg == "" {
			continue
		}
		klog.FromContext(ctx).Info("Evicting pod past its local storage limit", "pod", klog.KObj(p), "message", msg)
		m.setEviction(p.UID, eviction{message: msg, evicted: true})
		m.queue.Add(p.Namespace + "/" + p.Name)
	}
}
