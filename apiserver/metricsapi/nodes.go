package metricsapi

import (
	"context"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/metrics/pkg/apis/metrics"

	"github.com/kubeparts/kubeparts/apiserver/scraper"
)

// Usage is what the storage reads from the scraper.
type Usage interface {
	Node(name string) (scraper.NodeUsage, bool)
	Pod(namespace, name string) (scraper.PodUsage, bool)
}

// NodeStorage serves nodes.metrics.k8s.io. Nodes come from a metadata-only
// informer: names and labels are all it needs.
type NodeStorage struct {
	nodes cache.GenericLister
	usage Usage
}

var (
	_ rest.Storage              = &NodeStorage{}
	_ rest.KindProvider         = &NodeStorage{}
	_ rest.Scoper               = &NodeStorage{}
	_ rest.Getter               = &NodeStorage{}
	_ rest.Lister               = &NodeStorage{}
	_ rest.TableConvertor       = &NodeStorage{}
	_ rest.SingularNameProvider = &NodeStorage{}
)

// NewNodeStorage builds the storage over a lister of node metadata.
func NewNodeStorage(nodes cache.GenericLister, usage Usage) *NodeStorage {
	return &NodeStorage{nodes: nodes, usage: usage}
}

func (s *NodeStorage) New() runtime.Object     { return &metrics.NodeMetrics{} }
func (s *NodeStorage) Destroy()                {}
func (s *NodeStorage) Kind() string            { return "NodeMetrics" }
func (s *NodeStorage) NamespaceScoped() bool   { return false }
func (s *NodeStorage) GetSingularName() string { return "node" }
func (s *NodeStorage) NewList() runtime.Object { return &metrics.NodeMetricsList{} }

func (s *NodeStorage) metricsFor(meta metav1.Object) (*metrics.NodeMetrics, bool) {
	u, ok := s.usage.Node(meta.GetName())
	if !ok {
		return nil, false
	}
	return &metrics.NodeMetrics{
		ObjectMeta: metav1.ObjectMeta{Name: meta.GetName(), Labels: meta.GetLabels(), CreationTimestamp: metav1.NewTime(time.Now())},
		Timestamp:  metav1.NewTime(u.Timestamp),
		Window:     metav1.Duration{Duration: u.Window},
		Usage:      corev1.ResourceList{corev1.ResourceCPU: u.CPU, corev1.ResourceMemory: u.Memory},
	}, true
}

// List returns the metrics of the nodes matching the selectors that have usage.
func (s *NodeStorage) List(_ context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	ls, fs, err := selectors(opts, "metadata.name")
	if err != nil {
		return nil, err
	}
	objs, err := s.nodes.List(ls)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	list := &metrics.NodeMetricsList{}
	for _, o := range objs {
		meta := o.(metav1.Object)
		if !fs.Matches(fields.Set{"metadata.name": meta.GetName()}) {
			continue
		}
		if m, ok := s.metricsFor(meta); ok {
			list.Items = append(list.Items, *m)
		}
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list, nil
}

// Get returns one node's metrics; NotFound when the node does not exist or
// has no usage yet.
func (s *NodeStorage) Get(_ context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	o, err := s.nodes.Get(name)
	if err != nil {
		return nil, apierrors.NewNotFound(metrics.Resource("nodes"), name)
	}
	m, ok := s.metricsFor(o.(metav1.Object))
	if !ok {
		return nil, apierrors.NewNotFound(metrics.Resource("nodes"), name)
	}
	return m, nil
}

// ConvertToTable renders what `kubectl get nodes.metrics.k8s.io` shows.
func (s *NodeStorage) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	var items []metrics.NodeMetrics
	switch o := obj.(type) {
	case *metrics.NodeMetricsList:
		items = o.Items
	case *metrics.NodeMetrics:
		items = []metrics.NodeMetrics{*o}
	}
	t := usageTable()
	for i := range items {
		m := &items[i]
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells:  []any{m.Name, m.Usage.Cpu().String(), m.Usage.Memory().String(), m.Window.Duration.String()},
			Object: runtime.RawExtension{Object: m},
		})
	}
	return t, nil
}

func usageTable() *metav1.Table {
	return &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: "Name of the object"},
		{Name: "CPU", Type: "string", Description: "CPU usage (cores)"},
		{Name: "Memory", Type: "string", Description: "Memory working set (bytes)"},
		{Name: "Window", Type: "string", Description: "Interval the usage was measured over"},
	}}
}
