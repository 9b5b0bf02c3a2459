package controlplane

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cp "github.com/kubeparts/kubeparts/api/controlplane/v1alpha1"
	"github.com/kubeparts/kubeparts/internal/controllernames"
)

func TestCurrentLease(t *testing.T) {
	now := time.Unix(10_000, 0)
	lease := func(name, holder string, renewedAgo time.Duration) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system"}, Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To[int32](15), RenewTime: &metav1.MicroTime{Time: now.Add(-renewedAgo)}}}
	}
	v := &View{now: func() time.Time { return now }}
	for _, tc := range []struct {
		name   string
		binary string
		leases []*coordinationv1.Lease
		want   string // lease name, "" for none
	}{
		{"held", "kube-scheduler", []*coordinationv1.Lease{lease("kube-scheduler", "a", 2*time.Second)}, "kube-scheduler"},
		{"expired", "kube-scheduler", []*coordinationv1.Lease{lease("kube-scheduler", "a", time.Minute)}, ""},
		{"released (empty holder)", "kube-controller-manager", []*coordinationv1.Lease{lease("kube-controller-manager", "", time.Second)}, ""},
		{"second scheduler's own lease first", "kubeparts-scheduler", []*coordinationv1.Lease{lease("kube-scheduler", "stock", time.Second), lease("kubeparts-scheduler", "ours", time.Second)}, "kubeparts-scheduler"},
		{"replace mode: the stock lease", "kubeparts-scheduler", []*coordinationv1.Lease{lease("kube-scheduler", "ours", time.Second)}, "kube-scheduler"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]*coordinationv1.Lease{}
			for _, l := range tc.leases {
				m[l.Name] = l
			}
			got := ""
			if l := v.currentLease(tc.binary, m); l != nil {
				got = l.Name
			}
			if got != tc.want {
				t.Errorf("lease %q, want %q", got, tc.want)
			}
		})
	}
}

// Each controller kubeparts implements is reported as run by
// kubeparts-controller-manager when it is present, else by the stock manager,
// with the manager's health.
func TestControllers(t *testing.T) {
	stock := cp.Component{ObjectMeta: metav1.ObjectMeta{Name: "kube-controller-manager"}, Status: cp.ComponentStatus{Role: cp.RoleControllerManager, Implementation: cp.ImplementationStock, Binary: "kube-controller-manager", Health: cp.Healthy}}
	ours := cp.Component{ObjectMeta: metav1.ObjectMeta{Name: "kubeparts-controller-manager"}, Status: cp.ComponentStatus{Role: cp.RoleControllerManager, Implementation: cp.ImplementationKubeparts, Binary: "kubeparts-controller-manager", Health: cp.Unhealthy, Message: "down"}}
	for _, tc := range []struct {
		name       string
		found      []cp.Component
		impl, hlth string
	}{
		{"no manager", nil, cp.ImplementationStock, cp.Unknown},
		{"stock only", []cp.Component{stock}, cp.ImplementationStock, cp.Healthy},
		{"both: kubeparts runs them", []cp.Component{stock, ours}, cp.ImplementationKubeparts, cp.Unhealthy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := controllers(tc.found)
			if len(got) != len(controllernames.StockNames()) {
				t.Fatalf("%d controllers, want %d", len(got), len(controllernames.StockNames()))
			}
			for _, c := range got {
				if c.Status.Role != cp.RoleController || c.Status.Implementation != tc.impl || c.Status.Health != tc.hlth {
					t.Errorf("%s: %+v, want %s and %s", c.Name, c.Status, tc.impl, tc.hlth)
				}
			}
		})
	}
}
