package metricsapi

import (
	"context"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/metrics/pkg/apis/metrics"
)

// PodStorage serves pods.metrics.k8s.io from a metadata-only pod informer and
// the scraper's usage.
type PodStorage struct {
	pods  cache.GenericLister
	usage Usage
}

var (
	_ rest.Storage              = &PodStorage{}
	_ rest.KindProvider         = &PodStorage{}
	_ rest.Scoper               = &PodStorage{}
	_ rest.Getter               = &PodStorage{}
	_ rest.Lister               = &PodStorage{}
	_ rest.TableConvertor       = &PodStorage{}
	_ rest.SingularNameProvider = &PodStorage{}
)

// NewPodStorage builds the storage over a lister of pod metadata.
func NewPodStorage(pods cache.GenericLister, usage Usage) *PodStorage {
	return &PodStorage{pods: pods, usage: usage}
}

func (s *PodStorage) New() runtime.Object     { return &metrics.PodMetrics{} }
func (s *PodStorage) Destroy()                {}
func (s *PodStorage) Kind() string            { return "PodMetrics" }
func (s *PodStorage) NamespaceScoped() bool   { return true }
func (s *PodStorage) GetSingularName() string { return "pod" }
func (s *PodStorage) NewList() runtime.Object { return &metrics.PodMetricsList{} }

func (s *PodStorage) metricsFor(meta metav1.Object) (*metrics.PodMetrics, bool) {
	u, ok := s.usage.Pod(meta.GetNamespace(), meta.GetName())
	if !ok {
		return nil, false
	}
	m := &metrics.PodMetrics{
		ObjectMeta: metav1.ObjectMeta{Namespace: meta.GetNamespace(), Name: meta.GetName(), Labels: meta.GetLabels(), CreationTimestamp: metav1.NewTime(time.Now())},
		Timestamp:  metav1.NewTime(u.Timestamp),
		Window:     metav1.Duration{Duration: u.Window},
		Containers: make([]metrics.ContainerMetrics, 0, len(u.Containers)),
	}
	for _, c := range u.Containers {
		m.Containers = append(m.Containers, metrics.ContainerMetrics{Name: c.Name,
			Usage: corev1.ResourceList{corev1.ResourceCPU: c.CPU, corev1.ResourceMemory: c.Memory}})
	}
	return m, true
}

// List returns the metrics of the namespace's (or all) pods matching the selectors.
func (s *PodStorage) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	ls, fs, err := selectors(opts, "metadata.name", "metadata.namespace")
	if err != nil {
		return nil, err
	}
	var objs []runtime.Object
	if ns := genericapirequest.NamespaceValue(ctx); ns != "" {
		objs, err = s.pods.ByNamespace(ns).List(ls)
	} else {
		objs, err = s.pods.List(ls)
	}
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	list := &metrics.PodMetricsList{}
	for _, o := range objs {
		meta := o.(metav1.Object)
		if !fs.Matches(fields.Set{"metadata.name": meta.GetName(), "metadata.namespace": meta.GetNamespace()}) {
			continue
		}
		if m, ok := s.metricsFor(meta); ok {
			list.Items = append(list.Items, *m)
		}
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})
	return list, nil
}

// Get returns one pod's metrics; NotFound when the pod does not exist or has no usage yet.
func (s *PodStorage) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	ns := genericapirequest.NamespaceValue(ctx)
	o, err := s.pods.ByNamespace(ns).Get(name)
	if err != nil {
		return nil, apierrors.NewNotFound(metrics.Resource("pods"), name)
	}
	m, ok := s.metricsFor(o.(metav1.Object))
	if !ok {
		return nil, apierrors.NewNotFound(metrics.Resource("pods"), name)
	}
	return m, nil
}

// ConvertToTable renders what `kubectl get pods.metrics.k8s.io` shows: the
// pod's total over its containers.
func (s *PodStorage) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	var items []metrics.PodMetrics
	switch o := obj.(type) {
	case *metrics.PodMetricsList:
		items = o.Items
	case *metrics.PodMetrics:
		items = []metrics.PodMetrics{*o}
	}
	t := usageTable()
	for i := range items {
		m := &items[i]
		cpu, mem := resourceSum(m.Containers, corev1.ResourceCPU), resourceSum(m.Containers, corev1.ResourceMemory)
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells:  []any{m.Name, cpu, mem, m.Window.Duration.String()},
			Object: runtime.RawExtension{Object: m},
		})
	}
	return t, nil
}

func resourceSum(cs []metrics.ContainerMetrics, name corev1.ResourceName) string {
	var sum resource.Quantity
	for _, c := range cs {
		if q, ok := c.Usage[name]; ok {
			sum.Add(q)
		}
	}
	return sum.String()
}
