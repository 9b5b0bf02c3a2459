package localcluster

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// Only the roles up runs as kubeparts host processes get config/rbac's
// objects: a role run stock leaves them to its in-cluster install (Helm
// refuses to adopt objects it did not create).
func TestApplyRBACOnlyForRolesRun(t *testing.T) {
	for _, tc := range []struct {
		runs          map[string]bool
		want, wantNot []string // ClusterRoles
	}{
		{map[string]bool{RoleScheduler: true, RoleCloud: true}, []string{"kubeparts-scheduler"}, []string{"kubeparts-apiserver", "kubeparts-controller-manager"}},
		{map[string]bool{RoleControllerManager: true, RoleAPIServer: true}, []string{"kubeparts-apiserver", "kubeparts-controller-manager"}, []string{"kubeparts-scheduler"}},
	} {
		client := fake.NewClientset()
		if err := applyRBAC(context.Background(), client, tc.runs); err != nil {
			t.Fatal(err)
		}
		for _, name := range tc.want {
			if _, err := client.RbacV1().ClusterRoles().Get(context.Background(), name, metav1.GetOptions{}); err != nil {
				t.Errorf("runs %v: ClusterRole %s: %v", tc.runs, name, err)
			}
		}
		for _, name := range tc.wantNot {
			if _, err := client.RbacV1().ClusterRoles().Get(context.Background(), name, metav1.GetOptions{}); err == nil {
				t.Errorf("runs %v: ClusterRole %s created for a role run stock", tc.runs, name)
			}
		}
	}
}
