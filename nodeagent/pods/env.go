package pods

import (
	"context"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeparts/kubeparts/nodeagent/fieldpath"
	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
)

// waitError keeps a container waiting with a stock reason shown in its
// status until it is fixed: CreateContainerConfigError (a missing ConfigMap
// or Secret, an unknown field path), ErrImagePull, ErrImageNeverPull,
// CreateContainerError, RunContainerError.
type waitError struct{ container, reason, msg string }

func (e *waitError) Error() string { return e.container + ": " + e.msg }

// configError is the CreateContainerConfigError of container.
func configError(container, msg string) *waitError {
	return &waitError{container, "CreateContainerConfigError", msg}
}

// containerEnv resolves c's environment as the kubelet does: envFrom first
// (with its prefix), then env, later names overriding earlier ones; values
// from ConfigMaps, Secrets and the pod's own fields. A missing source that is
// not optional is a CreateContainerConfigError.
//
// Service variables (serviceVars) fill in the names the container does not
// set itself, and $(VAR) in env values may refer to them, as with the kubelet.
func containerEnv(ctx context.Context, client kubeclient.Interface, pod *corev1.Pod, c corev1.Container, allocatable corev1.ResourceList, serviceVars map[string]string) (map[string]string, error) {
	env := map[string]string{}
	// Expansion sees the Service variables, later overridden by the container's own.
	expand := func(v string) string {
		vars := env
		if len(serviceVars) > 0 {
			vars = make(map[string]string, len(env)+len(serviceVars))
			for k, v := range serviceVars {
				vars[k] = v
			}
			for k, v := range env {
				vars[k] = v
			}
		}
		return fieldpath.Expand(v, vars)
	}
	cms, secrets := map[string]*corev1.ConfigMap{}, map[string]*corev1.Secret{}
	configMap := func(name string) (*corev1.ConfigMap, error) {
		if cm, ok := cms[name]; ok {
			return cm, nil
		}
		cm, err := client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			cm, err = nil, nil
		}
		cms[name] = cm
		return cm, err
	}
	secret := func(name string) (*corev1.Secret, error) {
		if s, ok := secrets[name]; ok {
			return s, nil
		}
		s, err := client.CoreV1().Secrets(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			s, err = nil, nil
		}
		secrets[name] = s
		return s, err
	}
	optional := func(b *bool) bool { return b != nil && *b }
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, err := configMap(from.ConfigMapRef.Name)
			if err != nil {
				return nil, err
			}
			if cm == nil {
				if optional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, configError(c.Name, fmt.Sprintf("configmap %q not found", from.ConfigMapRef.Name))
			}
			for k, v := range cm.Data {
				env[from.Prefix+k] = v
			}
		case from.SecretRef != nil:
			s, err := secret(from.SecretRef.Name)
			if err != nil {
				return nil, err
			}
			if s == nil {
				if optional(from.SecretRef.Optional) {
					continue
				}
				return nil, configError(c.Name, fmt.Sprintf("secret %q not found", from.SecretRef.Name))
			}
			for k, v := range s.Data {
				env[from.Prefix+k] = string(v)
			}
		}
	}
	for _, e := range c.Env {
		src := e.ValueFrom
		switch {
		case src == nil:
			env[e.Name] = expand(e.Value)
		case src.ConfigMapKeyRef != nil:
			ref := src.ConfigMapKeyRef
			cm, err := configMap(ref.Name)
			if err != nil {
				return nil, err
			}
			v, ok := "", false
			if cm != nil {
				v, ok = cm.Data[ref.Key]
			}
			switch {
			case ok:
				env[e.Name] = v
			case !optional(ref.Optional) && cm == nil:
				return nil, configError(c.Name, fmt.Sprintf("configmap %q not found", ref.Name))
			case !optional(ref.Optional):
				return nil, configError(c.Name, fmt.Sprintf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name))
			}
		case src.SecretKeyRef != nil:
			ref := src.SecretKeyRef
			s, err := secret(ref.Name)
			if err != nil {
				return nil, err
			}
			var v []byte
			ok := false
			if s != nil {
				v, ok = s.Data[ref.Key]
			}
			switch {
			case ok:
				env[e.Name] = string(v)
			case !optional(ref.Optional) && s == nil:
				return nil, configError(c.Name, fmt.Sprintf("secret %q not found", ref.Name))
			case !optional(ref.Optional):
				return nil, configError(c.Name, fmt.Sprintf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name))
			}
		case src.FieldRef != nil:
			v, err := fieldpath.Value(pod, src.FieldRef.FieldPath)
			if err != nil {
				return nil, configError(c.Name, err.Error())
			}
			env[e.Name] = v
		case src.ResourceFieldRef != nil:
			// Limits not set read as the node's allocatable, as with the kubelet.
			name := src.ResourceFieldRef.ContainerName
			if name == "" {
				name = c.Name
			}
			v, err := fieldpath.ResourceValue(pod, name, src.ResourceFieldRef, allocatable)
			if err != nil {
				return nil, configError(c.Name, err.Error())
			}
			env[e.Name] = v
		}
	}
	for k, v := range serviceVars {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	return env, nil
}

// sortedEnv is env in a stable order for the CRI.
func sortedEnv(env map[string]string) []string { return slices.Sorted(maps.Keys(env)) }
