// Package noderesourcesfit is the KubepartsNodeResourcesFit scheduler plugin,
// a drop-in for the in-tree NodeResourcesFit: it filters out nodes without
// room for a pod's requests (cpu, memory, ephemeral-storage, pod count,
// hugepages and extended resources, init and sidecar containers and overhead
// counted as the kubelet admits them) with the stock failure reasons
// ("Insufficient cpu", "Too many pods"), and scores nodes by LeastAllocated,
// MostAllocated or RequestedToCapacityRatio with per-resource weights.
//
// Args have the fields of the stock NodeResourcesFitArgs. Extended resources
// backed by DRA device classes are left to the DynamicResources plugin, as in
// stock; scoring does not count DRA devices towards allocatable.
package noderesourcesfit
