package scraper

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// The scraper's own metrics. component-base metrics are no-ops until they
// are registered, so a Scraper works (and counts nothing) when the binary
// never calls RegisterMetrics.
var (
	scrapeFailures = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "kubeparts",
		Subsystem:      "apiserver",
		Name:           "scrape_failures_total",
		Help:           "Number of failed scrapes of a kubelet's /metrics/resource endpoint.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"node"})

	scrapeDuration = metrics.NewHistogram(&metrics.HistogramOpts{
		Namespace:      "kubeparts",
		Subsystem:      "apiserver",
		Name:           "scrape_duration_seconds",
		Help:           "Duration of one node scrape (request, read and parse), successful or not.",
		Buckets:        metrics.ExponentialBuckets(0.005, 2, 12), // 5ms .. ~10s, the default timeout
		StabilityLevel: metrics.ALPHA,
	})

	lastSuccess = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace:      "kubeparts",
		Subsystem:      "apiserver",
		Name:           "scrape_last_success_timestamp_seconds",
		Help:           "Unix time of the last successful scrape of a node's kubelet.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"node"})

	registerOnce sync.Once
)

// RegisterMetrics registers the scraper metrics with the legacy registry
// (served on the component's /metrics). It is safe to call more than once.
func RegisterMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(scrapeFailures, scrapeDuration, lastSuccess)
	})
}

// forgetNodeMetrics deletes a removed node's series so that the label set
// does not grow with node churn.
func forgetNodeMetrics(node string) {
	scrapeFailures.Delete(map[string]string{"node": node})
	lastSuccess.DeleteLabelValues(node)
}
