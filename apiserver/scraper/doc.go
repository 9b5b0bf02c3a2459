// Package scraper collects node and pod resource usage from every Node's
// kubelet and keeps the latest usage in memory for the metrics.k8s.io API.
//
// Each cycle lists the nodes, fetches each kubelet's /metrics/resource
// endpoint (Prometheus text format) with bounded concurrency and a per-node
// timeout, parses the few series the metrics API needs with a small
// hand-written parser, and merges them into compact per-node state.
//
// Usage is computed the way metrics-server does it:
//
//   - CPU is the rate between the two most recent cumulative samples
//     (container_cpu_usage_seconds_total, node_cpu_usage_seconds_total),
//     reported in nanocores; the window is the time between those samples.
//   - Memory is the latest working set (container_memory_working_set_bytes,
//     node_memory_working_set_bytes).
//
// A node or container is reported only once it has two samples with
// increasing timestamps; a sample whose timestamp or counter went backwards
// (a container or kubelet restart) starts over. A pod is reported only when
// every container the kubelet lists for it has usage, so that a consumer such
// as the HorizontalPodAutoscaler never sees a partial sum. Samples without a
// timestamp are stamped with the scrape time.
//
// Failures: a node whose scrape fails (network error, timeout, HTTP error
// status, oversized or unparsable body, missing node series) is left out of
// the results from that moment on. Its last cumulative samples are kept, not
// served, for a grace period of 2×Interval+Timeout so that a success right
// after a transient failure yields a rate at once; after that they are
// dropped. The same grace period hides all data when cycles stop succeeding
// (for example when the node lister keeps failing). Nodes that leave the node
// list are forgotten at the start of the next cycle, together with their
// metric series; pods disappear as soon as their kubelet stops reporting them.
//
// Reads (Node, Nodes, Pod, Pods) are safe while a cycle runs: each node's
// state is immutable once published and replaced as a whole.
package scraper
