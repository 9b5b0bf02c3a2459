// Package metrics holds the per-controller counters the workload controllers share,
// registered in controller-runtime's registry next to its workqueue and reconcile
// metrics.
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// PodsCreated and PodsDeleted count a controller's successful pod writes, labelled with
// its canonical name.
var (
	PodsCreated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubeparts_controller_pods_created_total",
		Help: "Pods created by a kubeparts workload controller.",
	}, []string{"controller"})
	PodsDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubeparts_controller_pods_deleted_total",
		Help: "Pods deleted by a kubeparts workload controller.",
	}, []string{"controller"})
	// PendingEvictions counts the pods whose eviction waits for a toleration to run out.
	PendingEvictions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kubeparts_taint_eviction_pending_pods",
		Help: "Pods on NoExecute-tainted nodes whose eviction waits for their tolerationSeconds.",
	})
	registerOnce sync.Once
)

// Register adds the counters to the registry once, whichever controller asks first.
func Register() {
	registerOnce.Do(func() { metrics.Registry.MustRegister(PodsCreated, PodsDeleted, PendingEvictions) })
}
