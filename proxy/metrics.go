package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics carry kube-proxy's names (subsystem kubeproxy), so dashboards and
// alerts written for kube-proxy keep working.
type metrics struct {
	registry               *prometheus.Registry
	syncDuration           prometheus.Histogram
	fullSyncDuration       prometheus.Histogram
	partialSyncDuration    prometheus.Histogram
	programmingDuration    prometheus.Histogram
	lastSync               prometheus.Gauge
	lastQueued             prometheus.Gauge
	endpointChangesPend    prometheus.Gauge
	endpointChangesTotal   prometheus.Counter
	serviceChangesPend     prometheus.Gauge
	serviceChangesTotal    prometheus.Counter
	syncFailures           prometheus.Counter
	noLocalEndpoints       *prometheus.GaugeVec
	healthzTotal           *prometheus.CounterVec
	livezTotal             *prometheus.CounterVec
	conntrackDeleted       prometheus.Counter
	invalidServicesSkipped prometheus.Gauge
}

func newMetrics() *metrics {
	syncBuckets := prometheus.ExponentialBuckets(0.001, 2, 15)
	// Programming latency is dominated by watch and batching delays: seconds,
	// with finer steps under one second.
	progBuckets := append([]float64{0.05, 0.1, 0.25, 0.5}, prometheus.LinearBuckets(1, 1, 59)...)
	progBuckets = append(progBuckets, prometheus.LinearBuckets(60, 5, 12)...)
	h := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Subsystem: "kubeproxy", Name: name, Help: help, Buckets: buckets})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Subsystem: "kubeproxy", Name: name, Help: help})
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Subsystem: "kubeproxy", Name: name, Help: help})
	}
	m := &metrics{
		registry:             prometheus.NewRegistry(),
		syncDuration:         h("sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds", syncBuckets),
		fullSyncDuration:     h("sync_full_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for full resyncs", syncBuckets),
		partialSyncDuration:  h("sync_partial_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for partial resyncs", syncBuckets),
		programmingDuration:  h("network_programming_duration_seconds", "In Cluster Network Programming Latency in seconds", progBuckets),
		lastSync:             g("sync_proxy_rules_last_timestamp_seconds", "The last time proxy rules were successfully synced"),
		lastQueued:           g("sync_proxy_rules_last_queued_timestamp_seconds", "The last time a sync of proxy rules was queued"),
		endpointChangesPend:  g("sync_proxy_rules_endpoint_changes_pending", "Pending proxy rules Endpoint changes"),
		endpointChangesTotal: c("sync_proxy_rules_endpoint_changes_total", "Cumulative proxy rules Endpoint changes"),
		serviceChangesPend:   g("sync_proxy_rules_service_changes_pending", "Pending proxy rules Service changes"),
		serviceChangesTotal:  c("sync_proxy_rules_service_changes_total", "Cumulative proxy rules Service changes"),
		syncFailures:         c("sync_proxy_rules_nftables_sync_failures_total", "Cumulative proxy nftables sync failures"),
		noLocalEndpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "kubeproxy", Name: "sync_proxy_rules_no_local_endpoints_total",
			Help: "Number of services with a Local traffic policy and no endpoints"}, []string{"traffic_policy"}),
		healthzTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "kubeproxy", Name: "proxy_healthz_total",
			Help: "Cumulative proxy healthz HTTP status"}, []string{"code"}),
		livezTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "kubeproxy", Name: "proxy_livez_total",
			Help: "Cumulative proxy livez HTTP status"}, []string{"code"}),
		// kubeparts' own: kube-proxy has no counter of the entries it clears.
		conntrackDeleted: prometheus.NewCounter(prometheus.CounterOpts{Subsystem: "kubeparts_proxy", Name: "conntrack_entries_deleted_total",
			Help: "Conntrack entries of removed UDP endpoints deleted"}),
		invalidServicesSkipped: prometheus.NewGauge(prometheus.GaugeOpts{Subsystem: "kubeparts_proxy", Name: "services_with_problems",
			Help: "Services with input kubeparts-proxy skipped in part or whole (see their Events)"}),
	}
	m.registry.MustRegister(m.syncDuration, m.fullSyncDuration, m.partialSyncDuration, m.programmingDuration, m.lastSync,
		m.lastQueued, m.endpointChangesPend, m.endpointChangesTotal, m.serviceChangesPend, m.serviceChangesTotal,
		m.syncFailures, m.noLocalEndpoints, m.healthzTotal, m.livezTotal, m.conntrackDeleted, m.invalidServicesSkipped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
