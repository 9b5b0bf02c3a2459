package controlplane

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apiserver/pkg/registry/rest"

	cp "github.com/kubeparts/kubeparts/api/controlplane/v1alpha1"
)

// Storage returns the REST storage of the group's resources. Neither supports
// watch: the objects are computed on read and never change on their own in a
// way one could subscribe to, so a watch request gets 405 MethodNotAllowed
// from the generic apiserver, with the verbs listed in discovery.
func (v *View) Storage() map[string]rest.Storage {
	return map[string]rest.Storage{
		"components":  &componentStorage{view: v},
		"etcdmembers": &etcdMemberStorage{view: v},
	}
}

// filter applies name field selectors and label selectors (our objects have
// no labels, so only the empty selector matches) to names.
func filter(opts *metainternalversion.ListOptions, name string) (bool, error) {
	if opts == nil {
		return true, nil
	}
	if opts.FieldSelector != nil {
		for _, r := range opts.FieldSelector.Requirements() {
			if r.Field != "metadata.name" {
				return false, apierrors.NewBadRequest(fmt.Sprintf("field selector %q is not supported: only metadata.name", r.Field))
			}
		}
		if !opts.FieldSelector.Matches(fields.Set{"metadata.name": name}) {
			return false, nil
		}
	}
	if opts.LabelSelector != nil && !opts.LabelSelector.Matches(labels.Set{}) {
		return false, nil
	}
	return true, nil
}

type componentStorage struct{ view *View }

var (
	_ rest.Storage              = &componentStorage{}
	_ rest.Scoper               = &componentStorage{}
	_ rest.KindProvider         = &componentStorage{}
	_ rest.Lister               = &componentStorage{}
	_ rest.Getter               = &componentStorage{}
	_ rest.TableConvertor       = &componentStorage{}
	_ rest.SingularNameProvider = &componentStorage{}
	_ rest.ShortNamesProvider   = &componentStorage{}
)

func (s *componentStorage) New() runtime.Object     { return &cp.Component{} }
func (s *componentStorage) NewList() runtime.Object { return &cp.ComponentList{} }
func (s *componentStorage) Destroy()                {}
func (s *componentStorage) NamespaceScoped() bool   { return false }
func (s *componentStorage) Kind() string            { return "Component" }
func (s *componentStorage) GetSingularName() string { return "component" }
func (s *componentStorage) ShortNames() []string    { return []string{"comp"} }

func (s *componentStorage) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	all, err := s.view.Components(ctx)
	if err != nil {
		return nil, err
	}
	list := &cp.ComponentList{}
	for _, c := range all {
		ok, err := filter(opts, c.Name)
		if err != nil {
			return nil, err
		}
		if ok {
			list.Items = append(list.Items, c)
		}
	}
	return list, nil
}

func (s *componentStorage) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	all, err := s.view.Components(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Name == name {
			return &all[i], nil
		}
	}
	return nil, apierrors.NewNotFound(cp.SchemeGroupVersion.WithResource("components").GroupResource(), name)
}

func (s *componentStorage) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	var items []cp.Component
	switch o := obj.(type) {
	case *cp.ComponentList:
		items = o.Items
	case *cp.Component:
		items = []cp.Component{*o}
	}
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name"},
		{Name: "Role", Type: "string"},
		{Name: "Implementation", Type: "string", Description: "stock or kubeparts"},
		{Name: "Health", Type: "string"},
		{Name: "Restarts", Type: "integer", Description: "how often the supervisor restarted its copies"},
		{Name: "Leader", Type: "string"},
		{Name: "Since", Type: "string", Description: "how long the leader has led"},
		{Name: "Binary", Type: "string", Priority: 1},
		{Name: "Version", Type: "string", Priority: 1},
		{Name: "Instances", Type: "string", Priority: 1},
		{Name: "Message", Type: "string", Priority: 1},
	}}
	for i := range items {
		c := &items[i]
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells: []any{c.Name, c.Status.Role, c.Status.Implementation, c.Status.Health, c.Status.Restarts, orNone(c.Status.Leader), age(c.Status.Since),
				c.Status.Binary, orNone(c.Status.Version), instances(c.Status.Instances), orNone(c.Status.Message)},
			Object: runtime.RawExtension{Object: c},
		})
	}
	return t, nil
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func age(t *metav1.Time) string {
	if t == nil {
		return "<none>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

func instances(in []cp.ComponentInstance) string {
	if len(in) == 0 {
		return "<none>"
	}
	healthy := 0
	var names []string
	for _, i := range in {
		if i.Health == cp.Healthy {
			healthy++
		}
		name := i.Name
		if i.Leader && len(in) > 1 {
			name += "(leader)"
		}
		names = append(names, name)
	}
	s := strings.Join(names, ",")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return fmt.Sprintf("%d/%d %s", healthy, len(in), s)
}

type etcdMemberStorage struct{ view *View }

var (
	_ rest.Storage              = &etcdMemberStorage{}
	_ rest.Scoper               = &etcdMemberStorage{}
	_ rest.KindProvider         = &etcdMemberStorage{}
	_ rest.Lister               = &etcdMemberStorage{}
	_ rest.Getter               = &etcdMemberStorage{}
	_ rest.TableConvertor       = &etcdMemberStorage{}
	_ rest.SingularNameProvider = &etcdMemberStorage{}
)

func (s *etcdMemberStorage) New() runtime.Object     { return &cp.EtcdMember{} }
func (s *etcdMemberStorage) NewList() runtime.Object { return &cp.EtcdMemberList{} }
func (s *etcdMemberStorage) Destroy()                {}
func (s *etcdMemberStorage) NamespaceScoped() bool   { return false }
func (s *etcdMemberStorage) Kind() string            { return "EtcdMember" }
func (s *etcdMemberStorage) GetSingularName() string { return "etcdmember" }

func (s *etcdMemberStorage) members(ctx context.Context) ([]cp.EtcdMember, error) {
	if s.view.etcd == nil {
		return nil, apierrors.NewServiceUnavailable("etcd members are not available: kubeparts-apiserver was started without --etcd-servers")
	}
	m, err := s.view.etcd.members(ctx)
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(err.Error())
	}
	return m, nil
}

func (s *etcdMemberStorage) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	all, err := s.members(ctx)
	if err != nil {
		return nil, err
	}
	list := &cp.EtcdMemberList{}
	for _, m := range all {
		ok, err := filter(opts, m.Name)
		if err != nil {
			return nil, err
		}
		if ok {
			list.Items = append(list.Items, m)
		}
	}
	return list, nil
}

func (s *etcdMemberStorage) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	all, err := s.members(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Name == name {
			return &all[i], nil
		}
	}
	return nil, apierrors.NewNotFound(cp.SchemeGroupVersion.WithResource("etcdmembers").GroupResource(), name)
}

func (s *etcdMemberStorage) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	var items []cp.EtcdMember
	switch o := obj.(type) {
	case *cp.EtcdMemberList:
		items = o.Items
	case *cp.EtcdMember:
		items = []cp.EtcdMember{*o}
	}
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name"},
		{Name: "ID", Type: "string"},
		{Name: "Leader", Type: "boolean"},
		{Name: "Health", Type: "string"},
		{Name: "Version", Type: "string"},
		{Name: "DB Size", Type: "string"},
		{Name: "Raft Term", Type: "integer"},
		{Name: "Quorum", Type: "integer", Description: "(voting members / 2) + 1"},
		{Name: "Tolerates", Type: "integer", Description: "member failures the cluster survives"},
		{Name: "Raft Index", Type: "integer", Priority: 1},
		{Name: "Client URLs", Type: "string", Priority: 1},
		{Name: "Message", Type: "string", Priority: 1},
	}}
	for i := range items {
		m := &items[i]
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells: []any{m.Name, m.Status.ID, m.Status.Leader, m.Status.Health, orNone(m.Status.Version), bytesString(m.Status.DBSize),
				m.Status.RaftTerm, m.Status.QuorumSize, m.Status.FailureTolerance, m.Status.RaftIndex,
				orNone(strings.Join(m.Status.ClientURLs, ",")), orNone(m.Status.Message)},
			Object: runtime.RawExtension{Object: m},
		})
	}
	return t, nil
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
