package pods

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
)

// Static pods: pods a node runs from manifest files (the kubelet's
// --pod-manifest-path), without the API server's say. Each one gets a
// mirror pod in the API (annotation kubernetes.io/config.mirror, owned by
// the Node) that shows it and its status; deleting the mirror does not stop
// the static pod, the agent creates it again. Removing the file stops the
// pod and deletes the mirror.
const (
	annotationSource = "kubernetes.io/config.source"
	annotationHash   = "kubernetes.io/config.hash"
	annotationSeen   = "kubernetes.io/config.seen"
	annotationMirror = corev1.MirrorPodAnnotationKey
	// manifestRescan is the kubelet's file check period, behind the
	// change notifications.
	manifestRescan = 20 * time.Second
)

func isMirror(pod *corev1.Pod) bool {
	_, ok := pod.Annotations[annotationMirror]
	return ok
}

// staticPod returns the static pod with this key on one of the nodes.
func (m *Manager) staticPod(key string) (Node, *corev1.Pod, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, pods := range m.static {
		if p := pods[key]; p != nil {
			return m.nodes[name], p, true
		}
	}
	return Node{}, nil, false
}

// removedStatic returns a static pod whose manifest is gone.
func (m *Manager) removedStatic(key string) (Node, *corev1.Pod, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.staticRemoved[key]
	if p == nil {
		return Node{}, nil, false
	}
	return m.nodes[p.Spec.NodeName], p, true
}

// loadManifests reads node's manifest directory and queues the static pods
// that appeared, changed or went away. A file that does not decode to a
// valid pod is logged and skipped, as by the kubelet; the others still run.
func (m *Manager) loadManifests(ctx context.Context, node Node) {
	logger := klog.FromContext(ctx)
	entries, err := os.ReadDir(node.ManifestDir)
	if err != nil && !os.IsNotExist(err) {
		logger.Error(err, "Reading static pod manifests", "path", node.ManifestDir)
		return
	}
	found := map[string]*corev1.Pod{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(node.ManifestDir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			logger.Error(err, "Reading static pod manifest", "path", path)
			continue
		}
		pod, err := staticPodFromManifest(data, node.Name)
		if err != nil {
			logger.Error(err, "Could not process static pod manifest", "path", path)
			continue
		}
		key := pod.Namespace + "/" + pod.Name
		if prev := found[key]; prev != nil {
			logger.Error(nil, "Static pod manifests name the same pod; keeping the first", "pod", key, "path", path)
			continue
		}
		found[key] = pod
	}
	m.mu.Lock()
	m.manifests[node.Name] = found
	changed := m.reconcileStatic(node.Name)
	m.mu.Unlock()
	for _, key := range changed {
		m.queue.Add(key)
	}
}

// reconcileStatic makes the node's running static pods follow its
// manifests: a new one starts; a removed or edited one is stopped first
// (an edited one then starts anew under its new UID, as the kubelet
// replaces it). It returns the keys to sync; m.mu is held.
func (m *Manager) reconcileStatic(nodeName string) []string {
	if m.static[nodeName] == nil {
		m.static[nodeName] = map[string]*corev1.Pod{}
	}
	active, want := m.static[nodeName], m.manifests[nodeName]
	var changed []string
	for key, p := range active {
		if w := want[key]; w == nil || w.UID != p.UID {
			m.staticRemoved[key] = p
			delete(active, key)
			changed = append(changed, key)
		}
	}
	for key, p := range want {
		if active[key] == nil && m.staticRemoved[key] == nil {
			active[key] = p
			changed = append(changed, key)
		}
	}
	return changed
}

// staticPodFromManifest decodes a manifest (YAML or JSON, kind Pod) and
// completes it as the kubelet's file source does: name suffixed with the
// node's, namespace default, bound to the node, a UID from the content (so
// a restart of the agent finds its containers again), the config
// annotations, and tolerating NoExecute taints (a static pod is never evicted).
func staticPodFromManifest(data []byte, nodeName string) (*corev1.Pod, error) {
	obj, gvk, err := kubeclient.Codecs.UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		return nil, err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, fmt.Errorf("kind %s: a static pod manifest holds one Pod", gvk.Kind)
	}
	if pod.Name == "" {
		return nil, fmt.Errorf("the pod has no name")
	}
	if len(pod.Spec.Containers) == 0 {
		return nil, fmt.Errorf("pod %s has no containers", pod.Name)
	}
	sum := sha256.Sum256(append(append([]byte{}, data...), nodeName...))
	hash := hex.EncodeToString(sum[:16])
	if pod.Namespace == "" {
		pod.Namespace = metav1.NamespaceDefault
	}
	pod.Name = pod.Name + "-" + nodeName
	pod.UID = types.UID(hash)
	pod.Spec.NodeName = nodeName
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[annotationHash] = hash
	pod.Annotations[annotationSource] = "file"
	pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
	applyPodDefaults(pod)
	return pod, nil
}

// applyPodDefaults fills what the API server would default for a pod it
// stored, since a static pod never goes through it before it runs.
func applyPodDefaults(pod *corev1.Pod) {
	if pod.Spec.RestartPolicy == "" {
		pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	if pod.Spec.TerminationGracePeriodSeconds == nil {
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		pod.Spec.TerminationGracePeriodSeconds = &grace
	}
	if pod.Spec.DNSPolicy == "" {
		pod.Spec.DNSPolicy = corev1.DNSClusterFirst
	}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			c := &list[i]
			if c.TerminationMessagePath == "" {
				c.TerminationMessagePath = corev1.TerminationMessagePathDefault
			}
			if c.TerminationMessagePolicy == "" {
				c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
			}
			if c.ImagePullPolicy == "" {
				c.ImagePullPolicy = corev1.PullIfNotPresent
				if tag := imageTag(c.Image); tag == "" || tag == "latest" {
					c.ImagePullPolicy = corev1.PullAlways
				}
			}
		}
	}
}

// imageTag is the tag of an image reference ("" when it has none or a digest).
func imageTag(image string) string {
	if strings.Contains(image, "@") {
		return "digest"
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return ""
}

// watchManifests loads node's manifests now and again on every change of
// the directory and every manifestRescan, until ctx ends.
func (m *Manager) watchManifests(ctx context.Context, node Node) {
	logger := klog.FromContext(ctx)
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(node.ManifestDir); err != nil {
			w.Close()
		}
	}
	var events chan fsnotify.Event
	if err != nil {
		logger.Error(err, "Watching static pod manifests; relying on the periodic rescan", "path", node.ManifestDir)
	} else {
		defer w.Close()
		events = w.Events
	}
	tick := time.NewTicker(manifestRescan)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-events:
		case <-tick.C:
		}
		m.loadManifests(ctx, node)
	}
}

// syncStatic runs a static pod and keeps its mirror pod: created when
// missing, replaced when it mirrors an older version, recreated after a
// deletion.
func (m *Manager) syncStatic(ctx context.Context, key string, node Node, static *corev1.Pod) error {
	m.withRecord(static.UID, func(r *podRecord) { r.key = key })
	mirror, err := m.pods.Pods(static.Namespace).Get(static.Name)
	switch {
	case apierrors.IsNotFound(err):
		mirror = nil
	case err != nil:
		return err
	case mirror.Annotations[annotationMirror] != static.Annotations[annotationHash] || mirror.DeletionTimestamp != nil:
		// Stale or being deleted: finish it; the informer's delete event
		// brings the pod back here to create the new one.
		return m.deletePodNow(ctx, mirror)
	}
	if mirror == nil {
		if err := m.createMirror(ctx, node, static); err != nil {
			return err
		}
		// Its status is written once the informer has it.
	}
	view := static.DeepCopy()
	if mirror != nil {
		view.Status = mirror.Status
	}
	return m.syncPod(ctx, key, node, view, mirror)
}

// createMirror creates the API object showing a static pod: its spec, the
// mirror annotation with the pod's hash, the Node as controller owner
// (what NodeRestriction requires of a node creating a pod).
func (m *Manager) createMirror(ctx context.Context, node Node, static *corev1.Pod) error {
	n, err := m.client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("node of mirror pod %s/%s: %w", static.Namespace, static.Name, err)
	}
	mirror := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: static.Name, Namespace: static.Namespace, Labels: static.Labels,
		Annotations: map[string]string{}, OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID, Controller: ptr.To(true)}}},
		Spec: *static.Spec.DeepCopy()}
	for k, v := range static.Annotations {
		mirror.Annotations[k] = v
	}
	mirror.Annotations[annotationMirror] = static.Annotations[annotationHash]
	mirror.Annotations[annotationSeen] = time.Now().UTC().Format(time.RFC3339Nano)
	_, err = m.client.CoreV1().Pods(static.Namespace).Create(ctx, mirror, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil // the informer brings it
	}
	if err != nil && node.Recorder != nil {
		node.Recorder.Eventf(&corev1.ObjectReference{Kind: "Node", Name: n.Name, UID: n.UID}, corev1.EventTypeWarning,
			"FailedCreateMirrorPod", "Failed creating a mirror pod for %s/%s: %v", static.Namespace, static.Name, err)
	}
	return err
}

// removeStatic stops a static pod whose manifest went away or changed and
// deletes its mirror; a changed manifest's new pod is then started.
func (m *Manager) removeStatic(ctx context.Context, key string, node Node, old *corev1.Pod) error {
	if err := m.killPod(ctx, node, old, ""); err != nil {
		return err
	}
	if mirror, err := m.pods.Pods(old.Namespace).Get(old.Name); err == nil {
		if err := m.deletePodNow(ctx, mirror); err != nil {
			return err
		}
	}
	m.mu.Lock()
	delete(m.staticRemoved, key)
	// An edited manifest's new version was held back until now.
	changed := m.reconcileStatic(node.Name)
	m.mu.Unlock()
	for _, k := range changed {
		m.queue.Add(k)
	}
	return nil
}
