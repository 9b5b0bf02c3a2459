// Package fieldpath renders the downward API: the pod fields and container
// resources that env vars (fieldRef, resourceFieldRef) and downwardAPI
// volume files expose, formatted as the kubelet formats them.
package fieldpath

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Value is the value of a pod field path. It accepts every path the API
// allows for env or volumes; which of them a given consumer may use is the
// API server's validation, not ours.
func Value(pod *corev1.Pod, fieldPath string) (string, error) {
	if path, key, ok := splitSubscript(fieldPath); ok {
		switch path {
		case "metadata.labels":
			if errs := validation.IsQualifiedName(key); len(errs) > 0 {
				return "", fmt.Errorf("invalid key subscript in %s: %s", fieldPath, strings.Join(errs, ";"))
			}
			return pod.Labels[key], nil
		case "metadata.annotations":
			// Annotation keys are case-insensitive in validation only.
			if errs := validation.IsQualifiedName(strings.ToLower(key)); len(errs) > 0 {
				return "", fmt.Errorf("invalid key subscript in %s: %s", fieldPath, strings.Join(errs, ";"))
			}
			return pod.Annotations[key], nil
		}
		return "", fmt.Errorf("fieldPath %q does not support subscript", fieldPath)
	}
	switch fieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return FormatMap(pod.Labels), nil
	case "metadata.annotations":
		return FormatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	case "status.hostIPs":
		ips := make([]corev1.PodIP, 0, len(pod.Status.HostIPs))
		for _, ip := range pod.Status.HostIPs {
			ips = append(ips, corev1.PodIP(ip))
		}
		return joinIPs(ips, pod.Status.HostIP), nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.podIPs":
		return joinIPs(pod.Status.PodIPs, pod.Status.PodIP), nil
	}
	return "", fmt.Errorf("unsupported fieldPath: %s", fieldPath)
}

// joinIPs is the comma-separated list, or the single IP when the status only
// has the singular field filled (older writers set just that one).
// joinIPs is a list of IPs (PodIP or HostIP) comma-separated, or the single
// IP when the list is empty.
func joinIPs(list []corev1.PodIP, single string) string {
	if len(list) == 0 {
		return single
	}
	ips := make([]string, 0, len(list))
	for _, ip := range list {
		ips = append(ips, ip.IP)
	}
	return strings.Join(ips, ",")
}

// splitSubscript splits "metadata.labels['key']" into its path and key.
func splitSubscript(fieldPath string) (path, key string, ok bool) {
	if !strings.HasSuffix(fieldPath, "']") {
		return "", "", false
	}
	path, key, ok = strings.Cut(strings.TrimSuffix(fieldPath, "']"), "['")
	if !ok || path == "" {
		return "", "", false
	}
	return path, key, true
}

// FormatMap renders labels or annotations as the kubelet writes them into a
// downwardAPI file: one key="value" line per entry, sorted by key, values
// Go-quoted so newlines and quotes in them cannot break the line format.
func FormatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[k]))
	}
	return b.String()
}

// ResourceValue is a container's request or limit named by ref, in units of
// ref.Divisor (default 1) rounded up. A limit the container does not set
// (or sets to zero) is the node's allocatable amount for cpu, memory and
// ephemeral-storage, since that is what bounds the container in practice.
func ResourceValue(pod *corev1.Pod, containerName string, ref *corev1.ResourceFieldSelector, nodeAllocatable corev1.ResourceList) (string, error) {
	c := findContainer(pod, containerName)
	if c == nil {
		return "", fmt.Errorf("container %q not found", containerName)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("unsupported container resource: %s", ref.Resource)
	}
	rname := corev1.ResourceName(name)
	switch {
	case rname == corev1.ResourceCPU, rname == corev1.ResourceMemory, rname == corev1.ResourceEphemeralStorage:
	case strings.HasPrefix(name, corev1.ResourceHugePagesPrefix):
		// Hugepages are never overcommitted: the limit is always set, so it
		// never defaults to allocatable.
	default:
		return "", fmt.Errorf("unsupported container resource: %s", ref.Resource)
	}
	list := c.Resources.Requests
	if kind == "limits" {
		list = c.Resources.Limits
	}
	q, set := list[rname]
	if kind == "limits" && (!set || q.IsZero()) && !strings.HasPrefix(name, corev1.ResourceHugePagesPrefix) {
		if a, ok := nodeAllocatable[rname]; ok {
			q = a
		}
	}
	if rname == corev1.ResourceCPU {
		return strconv.FormatInt(ceilDiv(q.MilliValue(), divisor.MilliValue()), 10), nil
	}
	return strconv.FormatInt(ceilDiv(q.Value(), divisor.Value()), 10), nil
}

// ceilDiv is a/b rounded up, in integers so large quantities stay exact.
func ceilDiv(a, b int64) int64 {
	if b <= 0 {
		b = 1
	}
	q := a / b
	if a%b != 0 && a > 0 {
		q++
	}
	return q
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}
