package replicaset

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Per-controller counters next to controller-runtime's workqueue and reconcile metrics.
var (
	podsCreated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubeparts_controller_pods_created_total",
		Help: "Pods created by a kubeparts workload controller.",
	}, []string{"controller"})
	podsDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubeparts_controller_pods_deleted_total",
		Help: "Pods deleted by a kubeparts workload controller.",
	}, []string{"controller"})
	registerOnce sync.Once
)

func registerMetrics() {
	registerOnce.Do(func() { metrics.Registry.MustRegister(podsCreated, podsDeleted) })
}
