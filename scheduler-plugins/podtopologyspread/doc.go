// Package podtopologyspread is kubeparts' reimplementation of the scheduler's
// PodTopologySpread plugin, registered as KubepartsPodTopologySpread.
//
// It honours a pod's spec.topologySpreadConstraints, or, for pods without any,
// the default constraints of the plugin arguments ("System": spread over
// hostnames and zones; "List": the configured ones) with a selector derived
// from the Services, ReplicationControllers, ReplicaSets and StatefulSets that
// select the pod.
//
//   - DoNotSchedule constraints are enforced in PreFilter/Filter: a node is
//     rejected when placing the pod there would push its domain more than
//     maxSkew pods above the least loaded eligible domain (taken as 0 while
//     fewer than minDomains domains exist), and rejected as unresolvable when
//     it lacks a constraint's topology label.
//   - ScheduleAnyway constraints are scored in PreScore/Score/NormalizeScore:
//     fewer matching pods in a node's domains means a higher score, each
//     topology weighted by the logarithm of its number of domains.
//
// Filter verdicts, failure reasons and normalized scores are the same as the
// in-tree plugin of Kubernetes 1.36 with its default feature gates; the package
// tests check that differentially on generated clusters.
package podtopologyspread
