package volumes

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"github.com/kubeparts/kubeparts/nodeagent/fieldpath"
	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
)

// sources reads the ConfigMaps and Secrets of one Setup, each once however
// many volumes use it (kube-root-ca.crt is in every kube-api-access volume).
type sources struct {
	ctx        context.Context
	client     kubeclient.Interface
	namespace  string
	configMaps map[string]*corev1.ConfigMap // nil value: not found
	secrets    map[string]*corev1.Secret
}

// configMap is the named ConfigMap; missing and optional, an empty one.
// The not-found text is the kubelet's (singular resource name).
func (s *sources) configMap(name string, optional bool) (*corev1.ConfigMap, error) {
	cm, seen := s.configMaps[name]
	if !seen {
		var err error
		cm, err = s.client.CoreV1().ConfigMaps(s.namespace).Get(s.ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			cm = nil
		case err != nil:
			return nil, fmt.Errorf("getting configmap %q: %w", name, err)
		}
		s.configMaps[name] = cm
	}
	if cm == nil {
		if !optional {
			return nil, fmt.Errorf("configmap %q not found", name)
		}
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: name}}, nil
	}
	return cm, nil
}

// secret is the named Secret; missing and optional, an empty one.
func (s *sources) secret(name string, optional bool) (*corev1.Secret, error) {
	sec, seen := s.secrets[name]
	if !seen {
		var err error
		sec, err = s.client.CoreV1().Secrets(s.namespace).Get(s.ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			sec = nil
		case err != nil:
			return nil, fmt.Errorf("getting secret %q: %w", name, err)
		}
		s.secrets[name] = sec
	}
	if sec == nil {
		if !optional {
			return nil, fmt.Errorf("secret %q not found", name)
		}
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: name}}, nil
	}
	return sec, nil
}

// configMapPayload is the files of a ConfigMap: every key (data and
// binaryData) named after itself, or only the listed items at their paths.
func configMapPayload(items []corev1.KeyToPath, cm *corev1.ConfigMap, mode int32, optional bool) (map[string]file, error) {
	payload := make(map[string]file, len(cm.Data)+len(cm.BinaryData))
	if len(items) == 0 {
		for k, v := range cm.Data {
			payload[k] = file{data: []byte(v), mode: mode}
		}
		for k, v := range cm.BinaryData {
			payload[k] = file{data: v, mode: mode}
		}
		return payload, nil
	}
	for _, it := range items {
		var data []byte
		if v, ok := cm.Data[it.Key]; ok {
			data = []byte(v)
		} else if v, ok := cm.BinaryData[it.Key]; ok {
			data = v
		} else if optional {
			continue
		} else {
			return nil, fmt.Errorf("configmap references non-existent config key: %s", it.Key)
		}
		payload[it.Path] = file{data: data, mode: itemMode(it.Mode, mode)}
	}
	return payload, nil
}

// secretPayload is configMapPayload for a Secret's (binary) data.
func secretPayload(items []corev1.KeyToPath, sec *corev1.Secret, mode int32, optional bool) (map[string]file, error) {
	payload := make(map[string]file, len(sec.Data))
	if len(items) == 0 {
		for k, v := range sec.Data {
			payload[k] = file{data: v, mode: mode}
		}
		return payload, nil
	}
	for _, it := range items {
		v, ok := sec.Data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("references non-existent secret key: %s", it.Key)
		}
		payload[it.Path] = file{data: v, mode: itemMode(it.Mode, mode)}
	}
	return payload, nil
}

// downwardAPIPayload renders the pod's fields and its containers' resources.
// Every item is tried, so one error message lists all bad items.
func (m *Manager) downwardAPIPayload(items []corev1.DownwardAPIVolumeFile, pod *corev1.Pod, mode int32) (map[string]file, error) {
	payload := make(map[string]file, len(items))
	var errs []error
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = fieldpath.Value(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			v, err = fieldpath.ResourceValue(pod, it.ResourceFieldRef.ContainerName, it.ResourceFieldRef, m.alloc)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		payload[it.Path] = file{data: []byte(v), mode: itemMode(it.Mode, mode)}
	}
	return payload, utilerrors.NewAggregate(errs)
}

// projectedPayload merges the files of every source of a projected volume,
// later sources overwriting earlier ones at the same path. Any failing
// source fails the whole volume, so containers never see part of it.
func (m *Manager) projectedPayload(ctx context.Context, pod *corev1.Pod, p *corev1.ProjectedVolumeSource, src *sources) (map[string]file, error) {
	mode := modeOr(p.DefaultMode)
	payload := map[string]file{}
	var errs []error
	add := func(files map[string]file, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		for k, v := range files {
			payload[k] = v
		}
	}
	for _, s := range p.Sources {
		switch {
		case s.ConfigMap != nil:
			optional := isTrue(s.ConfigMap.Optional)
			cm, err := src.configMap(s.ConfigMap.Name, optional)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			add(configMapPayload(s.ConfigMap.Items, cm, mode, optional))
		case s.Secret != nil:
			optional := isTrue(s.Secret.Optional)
			sec, err := src.secret(s.Secret.Name, optional)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			add(secretPayload(s.Secret.Items, sec, mode, optional))
		case s.DownwardAPI != nil:
			add(m.downwardAPIPayload(s.DownwardAPI.Items, pod, mode))
		case s.ServiceAccountToken != nil:
			token, err := m.token(ctx, pod, s.ServiceAccountToken)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			// As the kubelet: when all containers run as one user (fsUser),
			// the token is that user's alone; with an fsGroup it is 0600
			// too, and the group gets read access with the rest of the volume.
			f := file{data: token, mode: mode}
			if uid := fsUser(pod); uid != nil || fsGroup(pod) != nil {
				f.mode, f.uid = 0o600, uid
			}
			payload[s.ServiceAccountToken.Path] = f
		case s.ClusterTrustBundle != nil:
			errs = append(errs, fmt.Errorf("projected source clusterTrustBundle is not supported by kubeparts-nodeagent"))
		case s.PodCertificate != nil:
			errs = append(errs, fmt.Errorf("projected source podCertificate is not supported by kubeparts-nodeagent"))
		default:
			errs = append(errs, fmt.Errorf("projected volume source of unknown type is not supported by kubeparts-nodeagent"))
		}
	}
	return payload, utilerrors.NewAggregate(errs)
}

func itemMode(m *int32, def int32) int32 {
	if m != nil {
		return *m
	}
	return def
}
