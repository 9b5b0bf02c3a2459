// Package metricsapi serves metrics.k8s.io/v1beta1 (NodeMetrics, PodMetrics)
// from the scraper's latest usage, with metrics-server's contract: list and
// get, label selectors matched against the Node's or Pod's own labels, field
// selectors on metadata.name (and metadata.namespace for pods), Table output
// for kubectl. A node or pod without two usable samples yet is left out of a
// list and is NotFound on a get, as with metrics-server.
package metricsapi
