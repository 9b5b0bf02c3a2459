package pods

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kubeparts/kubeparts/internal/ociimage"
)

// registryAuth is one entry of a docker config: the registry (and optional
// path prefix) it applies to and its credentials.
type registryAuth struct {
	location string // host[/path], no scheme
	auth     *runtimeapi.AuthConfig
}

type dockerConfigEntry struct {
	Auth     string `json:"auth"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// pullSecrets reads the pod's imagePullSecrets; a missing one is reported
// (the kubelet's FailedToRetrieveImagePullSecret) and the pull goes on with
// the others, as stock.
func (m *Manager) pullSecrets(ctx context.Context, node Node, pod *corev1.Pod) ([]registryAuth, error) {
	var out []registryAuth
	var missing []string
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, err := m.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			missing = append(missing, ref.Name)
			continue
		}
		if err != nil {
			return nil, err
		}
		auths, err := parseDockerConfig(s)
		if err != nil {
			return nil, fmt.Errorf("image pull secret %s: %w", ref.Name, err)
		}
		out = append(out, auths...)
	}
	if len(missing) > 0 {
		node.event(pod, corev1.EventTypeWarning, "FailedToRetrieveImagePullSecret",
			"Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", strings.Join(missing, ", "))
	}
	return out, nil
}

// parseDockerConfig reads a kubernetes.io/dockerconfigjson or dockercfg Secret.
func parseDockerConfig(s *corev1.Secret) ([]registryAuth, error) {
	entries := map[string]dockerConfigEntry{}
	switch {
	case len(s.Data[corev1.DockerConfigJsonKey]) > 0:
		var cfg struct {
			Auths map[string]dockerConfigEntry `json:"auths"`
		}
		if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", corev1.DockerConfigJsonKey, err)
		}
		entries = cfg.Auths
	case len(s.Data[corev1.DockerConfigKey]) > 0:
		if err := json.Unmarshal(s.Data[corev1.DockerConfigKey], &entries); err != nil {
			return nil, fmt.Errorf("%s: %w", corev1.DockerConfigKey, err)
		}
	default:
		return nil, errors.New("neither .dockerconfigjson nor .dockercfg is set")
	}
	var out []registryAuth
	for key, e := range entries {
		user, pass := e.Username, e.Password
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("auth of %s: %w", key, err)
			}
			var ok bool
			if user, pass, ok = strings.Cut(string(raw), ":"); !ok {
				return nil, fmt.Errorf("auth of %s: want user:password", key)
			}
		}
		loc := key
		if i := strings.Index(loc, "://"); i >= 0 {
			loc = loc[i+3:]
		}
		loc = strings.TrimSuffix(loc, "/")
		if loc == "index.docker.io/v1" || loc == "index.docker.io" || loc == "registry-1.docker.io" {
			loc = "docker.io"
		}
		out = append(out, registryAuth{location: loc, auth: &runtimeapi.AuthConfig{Username: user, Password: pass, ServerAddress: key}})
	}
	// Most specific first: a path-scoped entry wins over its registry's.
	sort.Slice(out, func(i, j int) bool { return len(out[i].location) > len(out[j].location) })
	return out, nil
}

// credentialsFor are the credentials whose location the image lives under.
func credentialsFor(image string, auths []registryAuth) []*runtimeapi.AuthConfig {
	repo, _, _ := strings.Cut(ociimage.Normalize(image), "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	var out []*runtimeapi.AuthConfig
	for _, a := range auths {
		if repo == a.location || strings.HasPrefix(repo, a.location+"/") {
			out = append(out, a.auth)
		}
	}
	return out
}

// pullWithSecrets tries each matching credential, then none, as the
// kubelet does; the last error is returned.
func pullWithSecrets(ctx context.Context, images internalapi.ImageManagerService, spec *runtimeapi.ImageSpec, sandbox *runtimeapi.PodSandboxConfig, auths []registryAuth) (string, error) {
	var lastErr error
	for _, a := range append(credentialsFor(spec.Image, auths), nil) {
		ref, err := images.PullImage(ctx, spec, a, sandbox)
		if err == nil {
			return ref, nil
		}
		lastErr = err
	}
	return "", lastErr
}
