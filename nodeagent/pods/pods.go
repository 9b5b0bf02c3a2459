// Package pods runs the pods bound to the agent's nodes through the CRI: a
// sandbox, the init containers in order, then the app containers; it writes
// the pod status (phase, conditions, IPs, container statuses) only when it
// changed, and on deletion stops everything and removes the pod object.
//
// One manager serves every node the process hosts, from one pod informer, so
// a simulation of many nodes costs one watch.
package pods

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Node is one node the manager runs pods for.
type Node struct {
	Name    string
	HostIP  string
	Runtime internalapi.RuntimeService
	Images  internalapi.ImageManagerService
}

// Manager syncs the pods of its nodes.
type Manager struct {
	client kubernetes.Interface
	nodes  map[string]Node
	pods   corelisters.PodLister
	synced cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	inf    informers.SharedInformerFactory
}

// NewManager watches the pods bound to nodes.
func NewManager(client kubernetes.Interface, nodes []Node) (*Manager, error) {
	m := &Manager{client: client, nodes: map[string]Node{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](), workqueue.TypedRateLimitingQueueConfig[string]{Name: "pods"})}
	for _, n := range nodes {
		m.nodes[n.Name] = n
	}
	// One node: only its pods. Several: every bound pod, filtered here.
	selector := fields.OneTermNotEqualSelector("spec.nodeName", "").String()
	if len(nodes) == 1 {
		selector = fields.OneTermEqualSelector("spec.nodeName", nodes[0].Name).String()
	}
	m.inf = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
	podInf := m.inf.Core().V1().Pods()
	m.pods, m.synced = podInf.Lister(), podInf.Informer().HasSynced
	enqueue := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			if _, mine := m.nodes[p.Spec.NodeName]; !mine {
				return
			}
		}
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			m.queue.Add(key)
		}
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, n any) { enqueue(n) }, DeleteFunc: enqueue,
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// Run syncs pods with workers goroutines until ctx ends.
func (m *Manager) Run(ctx context.Context, workers int) {
	defer m.queue.ShutDown()
	m.inf.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), m.synced) {
		return
	}
	for range workers {
		go func() {
			for m.processNext(ctx) {
			}
		}()
	}
	<-ctx.Done()
}

func (m *Manager) processNext(ctx context.Context) bool {
	key, quit := m.queue.Get()
	if quit {
		return false
	}
	defer m.queue.Done(key)
	if err := m.sync(ctx, key); err != nil {
		klog.FromContext(ctx).Error(err, "Syncing pod", "pod", key)
		m.queue.AddRateLimited(key)
		return true
	}
	m.queue.Forget(key)
	return true
}

func (m *Manager) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := m.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// Gone from the API: whatever still runs for it is an orphan.
		for _, n := range m.nodes {
			if err := removeSandboxes(ctx, n.Runtime, map[string]string{labelNamespace: ns, labelName: name}); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	node, ok := m.nodes[pod.Spec.NodeName]
	if !ok {
		return nil
	}
	if pod.DeletionTimestamp != nil {
		return m.terminate(ctx, node, pod)
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	sandbox, err := ensureRunning(ctx, node, pod)
	if err != nil {
		return err
	}
	return m.writeStatus(ctx, node, pod, sandbox)
}

// Labels the agent puts on sandboxes, as the kubelet does, to find a pod's
// sandboxes again after a restart.
const (
	labelNamespace = "io.kubernetes.pod.namespace"
	labelName      = "io.kubernetes.pod.name"
	labelUID       = "io.kubernetes.pod.uid"
	labelContainer = "io.kubernetes.container.name"
)

func sandboxOf(ctx context.Context, rt internalapi.RuntimeService, pod *corev1.Pod) (*runtimeapi.PodSandbox, error) {
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{labelUID: string(pod.UID)}})
	if err != nil {
		return nil, err
	}
	for _, s := range list {
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			return s, nil
		}
	}
	return nil, nil
}

// ensureRunning starts the sandbox and containers that are missing: init
// containers one after the other (a restartable one, a sidecar, keeps
// running), then the app containers. Existing ones are adopted, so a restart
// of the agent does not restart anything.
func ensureRunning(ctx context.Context, node Node, pod *corev1.Pod) (*runtimeapi.PodSandbox, error) {
	sb, err := sandboxOf(ctx, node.Runtime, pod)
	if err != nil {
		return nil, err
	}
	config := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID)},
		Hostname: pod.Name,
		Labels:   map[string]string{labelNamespace: pod.Namespace, labelName: pod.Name, labelUID: string(pod.UID)},
	}
	if sb == nil {
		if _, err := node.Runtime.RunPodSandbox(ctx, config, ""); err != nil {
			return nil, fmt.Errorf("RunPodSandbox: %w", err)
		}
		if sb, err = sandboxOf(ctx, node.Runtime, pod); err != nil || sb == nil {
			return nil, fmt.Errorf("sandbox of %s/%s not found after RunPodSandbox: %v", pod.Namespace, pod.Name, err)
		}
	}
	existing, err := containersOf(ctx, node.Runtime, sb.Id)
	if err != nil {
		return nil, err
	}
	start := func(c corev1.Container, runToCompletion bool) error {
		if _, ok := existing[c.Name]; ok {
			return nil
		}
		image, err := node.Images.PullImage(ctx, &runtimeapi.ImageSpec{Image: c.Image}, nil, config)
		if err != nil {
			return fmt.Errorf("pull %s: %w", c.Image, err)
		}
		id, err := node.Runtime.CreateContainer(ctx, sb.Id, &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: c.Name}, Image: &runtimeapi.ImageSpec{Image: image},
			Command: c.Command, Args: c.Args, Labels: map[string]string{labelContainer: c.Name, labelUID: string(pod.UID)},
		}, config)
		if err != nil {
			return fmt.Errorf("create container %s: %w", c.Name, err)
		}
		if err := node.Runtime.StartContainer(ctx, id); err != nil {
			return fmt.Errorf("start container %s: %w", c.Name, err)
		}
		if runToCompletion {
			// A simulated init container completes at once (exit 0).
			return node.Runtime.StopContainer(ctx, id, 0)
		}
		return nil
	}
	for _, c := range pod.Spec.InitContainers {
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if err := start(c, !sidecar); err != nil {
			return nil, err
		}
	}
	for _, c := range pod.Spec.Containers {
		if err := start(c, false); err != nil {
			return nil, err
		}
	}
	return sb, nil
}

// containersOf maps container name to its newest status in a sandbox.
func containersOf(ctx context.Context, rt internalapi.RuntimeService, sandboxID string) (map[string]*runtimeapi.ContainerStatus, error) {
	list, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: sandboxID})
	if err != nil {
		return nil, err
	}
	out := map[string]*runtimeapi.ContainerStatus{}
	for _, c := range list {
		st, err := rt.ContainerStatus(ctx, c.Id, false)
		if err != nil {
			return nil, err
		}
		if cur, ok := out[c.Metadata.Name]; !ok || st.Status.CreatedAt > cur.CreatedAt {
			out[c.Metadata.Name] = st.Status
		}
	}
	return out, nil
}

// terminate stops the pod's containers and sandbox, then deletes the pod
// object (grace period 0, UID precondition: never someone else's pod of the
// same name).
func (m *Manager) terminate(ctx context.Context, node Node, pod *corev1.Pod) error {
	if err := removeSandboxes(ctx, node.Runtime, map[string]string{labelUID: string(pod.UID)}); err != nil {
		return err
	}
	err := m.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64), Preconditions: metav1.NewUIDPreconditions(string(pod.UID)),
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func removeSandboxes(ctx context.Context, rt internalapi.RuntimeService, labels map[string]string) error {
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: labels})
	if err != nil {
		return err
	}
	for _, sb := range list {
		cs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: sb.Id})
		if err != nil {
			return err
		}
		for _, c := range cs {
			if err := rt.StopContainer(ctx, c.Id, 0); err != nil {
				return err
			}
			if err := rt.RemoveContainer(ctx, c.Id); err != nil {
				return err
			}
		}
		if err := rt.StopPodSandbox(ctx, sb.Id); err != nil {
			return err
		}
		if err := rt.RemovePodSandbox(ctx, sb.Id); err != nil {
			return err
		}
	}
	return nil
}

// writeStatus computes the pod's status from the runtime and writes it when it differs.
func (m *Manager) writeStatus(ctx context.Context, node Node, pod *corev1.Pod, sb *runtimeapi.PodSandbox) error {
	sbStatus, err := node.Runtime.PodSandboxStatus(ctx, sb.Id, false)
	if err != nil {
		return err
	}
	containers, err := containersOf(ctx, node.Runtime, sb.Id)
	if err != nil {
		return err
	}
	st := computeStatus(pod, node.HostIP, sbStatus.GetStatus(), containers, metav1.Now())
	if apiequality.Semantic.DeepEqual(st, pod.Status) {
		return nil
	}
	updated := pod.DeepCopy()
	updated.Status = st
	_, err = m.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		m.queue.AddAfter(pod.Namespace+"/"+pod.Name, 100*time.Millisecond)
		return nil
	}
	return err
}
