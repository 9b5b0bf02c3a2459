package localcluster

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/kubeparts/kubeparts/config"
)

// applyRBAC creates or updates the ClusterRoles and ClusterRoleBindings of config/rbac,
// the same files users apply with kubectl, for the roles this cluster runs as
// kubeparts host processes (config/rbac/<role>.yaml). A role run stock gets
// none: its in-cluster install (the Helm chart, config/) owns those objects, and
// Helm refuses to adopt objects it did not create.
func applyRBAC(ctx context.Context, client kubernetes.Interface, runs map[string]bool) error {
	files, err := fs.Glob(config.RBAC, "rbac/*.yaml")
	if err != nil {
		return err
	}
	for _, name := range files {
		if !runs[strings.TrimSuffix(path.Base(name), ".yaml")] { // kustomization.yaml included
			continue
		}
		data, err := config.RBAC.ReadFile(name)
		if err != nil {
			return err
		}
		for _, doc := range bytes.Split(data, []byte("\n---\n")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := applyOne(ctx, client, obj); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

func applyOne(ctx context.Context, client kubernetes.Interface, obj any) error {
	rbac := client.RbacV1()
	switch o := obj.(type) {
	case *rbacv1.ClusterRole:
		return upsert(ctx, o, rbac.ClusterRoles())
	case *rbacv1.ClusterRoleBinding:
		return upsert(ctx, o, rbac.ClusterRoleBindings())
	case *rbacv1.Role:
		return upsert(ctx, o, rbac.Roles(o.Namespace))
	case *rbacv1.RoleBinding:
		return upsert(ctx, o, rbac.RoleBindings(o.Namespace))
	}
	return fmt.Errorf("unexpected object %T in config/rbac", obj)
}
