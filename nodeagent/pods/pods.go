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
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/kubeparts/kubeparts/nodeagent/events"
	"github.com/kubeparts/kubeparts/nodeagent/fieldpath"
	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
	"github.com/kubeparts/kubeparts/nodeagent/podcri"
	"github.com/kubeparts/kubeparts/nodeagent/probes"
	"github.com/kubeparts/kubeparts/nodeagent/volumes"
)

// Node is one node the manager runs pods for.
type Node struct {
	Name    string
	HostIP  string
	Runtime internalapi.RuntimeService
	Images  internalapi.ImageManagerService
	// RuntimeName prefixes container IDs in statuses ("containerd://...").
	RuntimeName string
	// Simulated runtimes never exit a container by themselves: their init
	// containers are stopped right after starting, as if they had completed.
	Simulated bool
	// Recorder emits the node's events about pods (source "kubelet", as stock,
	// so tools filtering on it keep working); nil emits none.
	Recorder events.Recorder
	// CgroupParent holds the pods' cgroups (pod<uid> under it); LogDir their
	// logs (<namespace>_<name>_<uid>/<container>/0.log). Empty: the runtime's defaults.
	CgroupParent, LogDir string
	// CgroupDriver is how the runtime names cgroups: CgroupDriverCgroupfs
	// (also when empty) or CgroupDriverSystemd.
	CgroupDriver string
	// Allocatable is what pods may use of the node: the value of
	// resourceFieldRef limits a container does not set.
	Allocatable corev1.ResourceList
	// ManifestDir holds static pod manifests (--pod-manifest-path); empty: none.
	ManifestDir string
	// PodDir holds per-pod files on the host (<uid>/volumes, termination
	// message files); empty for simulated nodes, which have neither.
	PodDir string
	// Pressure observes the eviction signals; nil: the node never evicts
	// (simulated nodes).
	Pressure PressureSignals
	// LogMaxSize and LogMaxFiles bound container logs; 0: never rotated.
	LogMaxSize  int64
	LogMaxFiles int
	// Security are the node's seccomp defaults.
	Security podcri.Security
	// Sysctls are the podcri.Sysctls pods may set (the safe ones and --allowed-unsafe-podcri.Sysctls).
	Sysctls podcri.SysctlAllowlist
	// DNS is how pods resolve names (unused on simulated nodes).
	DNS podcri.DNS
}

// Manager syncs the pods of its nodes.
type Manager struct {
	client kubeclient.Interface
	nodes  map[string]Node
	pods   corelisters.PodLister
	synced cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	inf    cache.SharedIndexInformer
	// services feed the containers' Service environment variables.
	services cache.SharedIndexInformer
	now      func() time.Time
	// Resync re-examines every pod this often, to notice containers that
	// exited on their own (the kubelet's relist); 0 turns it off, as for the
	// simulated runtime, whose containers only stop when told to.
	Resync time.Duration

	// probes runs the probes of each real node's containers; simulated
	// nodes have none (their containers are always started and ready).
	probes map[string]*probes.Manager
	// volumes materializes the pods' volumes of each real node.
	volumes map[string]*volumes.Manager

	mu sync.Mutex
	// records hold everything kept about each pod, by UID (lifecycle.go).
	records map[types.UID]*podRecord
	// Static pods by node and key: from the manifests, running, and
	// stopping (removed or replaced manifests).
	manifests, static map[string]map[string]*corev1.Pod
	staticRemoved     map[string]*corev1.Pod
	// admitMu admits one pod at a time (admit.go).
	admitMu sync.Mutex
}

// setWaitError records (or with nil clears) why the pod's next container waits.
func (m *Manager) setWaitError(uid types.UID, e *waitError) {
	m.withRecord(uid, func(r *podRecord) { r.waitErr = e })
}

// waiting is what each of the pod's containers waits on, if anything.
func (m *Manager) waiting(uid types.UID) map[string]corev1.ContainerStateWaiting {
	w := map[string]corev1.ContainerStateWaiting{}
	m.lookup(uid, func(r *podRecord) {
		w = r.restarts.waiting(m.now())
		if e := r.waitErr; e != nil {
			w[e.container] = corev1.ContainerStateWaiting{Reason: e.reason, Message: e.msg}
		}
	})
	return w
}

// NewManager watches the pods bound to nodes.
func NewManager(client kubeclient.Interface, nodes []Node) (*Manager, error) {
	m := &Manager{client: client, nodes: map[string]Node{}, now: time.Now, records: map[types.UID]*podRecord{},
		manifests: map[string]map[string]*corev1.Pod{}, static: map[string]map[string]*corev1.Pod{}, staticRemoved: map[string]*corev1.Pod{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](), workqueue.TypedRateLimitingQueueConfig[string]{Name: "pods"})}
	m.probes, m.volumes = map[string]*probes.Manager{}, map[string]*volumes.Manager{}
	for _, n := range nodes {
		m.nodes[n.Name] = n
		if n.PodDir != "" {
			m.volumes[n.Name] = volumes.NewManager(client, n.PodDir, n.Allocatable, nil)
		}
		if !n.Simulated {
			m.probes[n.Name] = probes.NewManager(n.Runtime, n.Recorder, m.probeChanged)
		}
	}
	// One node: only its pods. Several: every bound pod, filtered here.
	selector := fields.OneTermNotEqualSelector("spec.nodeName", "").String()
	if len(nodes) == 1 {
		selector = fields.OneTermEqualSelector("spec.nodeName", nodes[0].Name).String()
	}
	// An informer of our own (not client-go's factory, which links every API
	// group): list and watch the node's pods, indexed by namespace for the lister.
	m.inf = cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return client.CoreV1().Pods(metav1.NamespaceAll).Watch(ctx, o)
		},
	}, &corev1.Pod{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc, nodeNameIndex: indexByNodeName})
	m.pods, m.synced = corelisters.NewPodLister(m.inf.GetIndexer()), m.inf.HasSynced
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
	if _, err := m.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, n any) { enqueue(n) }, DeleteFunc: enqueue,
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// probeChanged hands a probe result to the pod's worker: through the
// queue, or while the pod terminates (its worker busy stopping it) through
// its record's channel.
func (m *Manager) probeChanged(uid types.UID) {
	var key string
	var changed chan struct{}
	m.lookup(uid, func(r *podRecord) {
		key = r.key
		if r.phase == phaseTerminating {
			changed = r.changed
		}
	})
	switch {
	case changed != nil:
		select {
		case changed <- struct{}{}:
		default: // one pending signal is enough
		}
	case key != "":
		m.queue.Add(key)
	}
}

// serviceIndexer is the Services cache (nil before Run, e.g. in unit tests).
func (m *Manager) serviceIndexer() cache.Indexer {
	if m.services == nil {
		return nil
	}
	return m.services.GetIndexer()
}

// Pods lists the pods of the manager's nodes (from its informer).
func (m *Manager) Pods() corelisters.PodLister { return m.pods }

// Run syncs pods with workers goroutines until ctx ends.
func (m *Manager) Run(ctx context.Context, workers int) {
	defer m.queue.ShutDown()
	go m.inf.RunWithContext(ctx)
	m.services = newServiceInformer(m.client)
	go m.services.RunWithContext(ctx)
	// Like the kubelet, start no container before the Services are known:
	// its environment would lack them for the container's whole life.
	if !cache.WaitForCacheSync(ctx.Done(), m.synced, m.services.HasSynced) {
		return
	}
	// Static pods are known before any sync, so their mirror pods are not
	// taken for orphans.
	for _, n := range m.nodes {
		if n.ManifestDir != "" {
			m.loadManifests(ctx, n)
			go m.watchManifests(ctx, n)
		}
	}
	for range workers {
		go func() {
			for m.processNext(ctx) {
			}
		}()
	}
	go wait.UntilWithContext(ctx, m.housekeeping, housekeepingInterval)
	go wait.UntilWithContext(ctx, m.evictionRound, evictionInterval)
	go wait.UntilWithContext(ctx, m.rotateLogs, logRotationInterval)
	if len(m.volumes) > 0 { // real nodes
		go wait.UntilWithContext(ctx, func(ctx context.Context) {
			if err := m.updateQoSCgroups(); err != nil {
				klog.FromContext(ctx).Error(err, "Updating QoS cgroups")
			}
		}, 10*time.Second)
	}
	if m.Resync > 0 {
		go wait.UntilWithContext(ctx, func(context.Context) {
			pods, err := m.pods.List(labels.Everything())
			if err != nil {
				return
			}
			for _, p := range pods {
				if _, mine := m.nodes[p.Spec.NodeName]; mine && !isTerminal(p) {
					m.queue.Add(p.Namespace + "/" + p.Name)
				}
			}
		}, m.Resync)
	}
	<-ctx.Done()
	for _, p := range m.probes {
		p.Stop()
	}
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
	// Static pods come from files, not from the API: their mirror pod is
	// only where their status is shown.
	if node, static, ok := m.staticPod(key); ok {
		return m.syncStatic(ctx, key, node, static)
	}
	if node, old, ok := m.removedStatic(key); ok {
		return m.removeStatic(ctx, key, node, old)
	}
	pod, err := m.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// Gone from the API: whatever still runs for it is an orphan, and
		// nothing is kept about it (force-deleted pods included).
		for _, n := range m.nodes {
			if err := removeSandboxes(ctx, n.Runtime, map[string]string{labelNamespace: ns, labelName: name}); err != nil {
				return err
			}
		}
		return m.syncTerminated(key)
	}
	if err != nil {
		return err
	}
	node, ok := m.nodes[pod.Spec.NodeName]
	if !ok {
		return nil
	}
	if isMirror(pod) {
		// A mirror pod without its static pod (the file is gone, or another
		// agent's): removed, as the kubelet removes orphaned mirror pods.
		return m.deletePodNow(ctx, pod)
	}
	m.withRecord(pod.UID, func(r *podRecord) { r.key = key })
	if pod.DeletionTimestamp != nil {
		return m.terminate(ctx, node, pod)
	}
	return m.syncPod(ctx, key, node, pod, pod)
}

// syncTerminated ends the records of the pods gone from the API under key
// (their containers are gone already): nothing is kept about them.
func (m *Manager) syncTerminated(key string) error {
	var gone []types.UID
	m.mu.Lock()
	for uid, r := range m.records {
		if r.key == key {
			r.phase = phaseTerminated
			gone = append(gone, uid)
		}
	}
	m.mu.Unlock()
	for _, uid := range gone {
		m.forget(uid)
		for _, p := range m.probes {
			p.RemovePod(uid)
		}
	}
	return nil
}

// syncPod brings the containers of pod (what runs) in line with its spec
// and writes the resulting status to apiPod (the API object showing it: the
// pod itself, or a static pod's mirror).
func (m *Manager) syncPod(ctx context.Context, key string, node Node, pod, apiPod *corev1.Pod) error {
	if err := m.killUnhealthy(ctx, node, pod); err != nil {
		return err
	}
	if isTerminal(pod) {
		return nil
	}
	if left, ok := activeDeadline(pod, m.now()); ok {
		if _, evicted := m.evictionOf(pod.UID); left <= 0 && !evicted {
			m.setEviction(pod.UID, eviction{reason: deadlineExceeded, message: deadlineExceededMessage, evicted: true, deadline: true})
		} else if left > 0 {
			m.queue.AddAfter(key, left) // a shortened deadline is an update: synced then
		}
	}
	if e, ok := m.evictionOf(pod.UID); ok {
		return m.evictPod(ctx, node, pod, apiPod, e)
	}
	if pod.Status.StartTime == nil && !m.wasAdmitted(pod) {
		// Admission: a pod that never ran may be turned away.
		reason, msg := admission(node, pod)
		if msg == "" {
			reason, msg = m.admitResources(ctx, node, pod)
		}
		if msg != "" {
			if sb, err := sandboxOf(ctx, node.Runtime, pod); err != nil || sb != nil {
				return err // it runs already (adopted): not a new pod
			}
			e := eviction{reason: reason, message: msg}
			m.setEviction(pod.UID, e)
			return m.evictPod(ctx, node, pod, apiPod, e)
		}
	}
	// A resize is allocated if the node has room; containers run with
	// what is allocated (the spec's resources once it is).
	res := m.resourcesOf(node, pod)
	if err := m.allocate(node, pod, res); err != nil {
		return err
	}
	if res.pending.reason != "" { // else the allocation is the spec
		pod = withAllocation(pod, res.Allocated)
	}
	sandbox, err := m.ensureRunning(ctx, node, pod)
	var we *waitError
	var me *mountError
	if errors.As(err, &me) {
		// The containers wait (ContainerCreating) until the volumes work.
		m.queue.AddAfter(key, 5*time.Second)
		return m.writeStatus(ctx, node, pod, nil, apiPod)
	}
	if errors.As(err, &we) {
		// Shown in the status; retried, since the missing object or image may appear.
		m.setWaitError(pod.UID, we)
		m.queue.AddAfter(key, 5*time.Second)
		if sandbox, err = sandboxOf(ctx, node.Runtime, pod); err != nil || sandbox == nil {
			return err
		}
		return m.writeStatus(ctx, node, pod, sandbox, apiPod)
	}
	m.setWaitError(pod.UID, nil)
	if errors.Is(err, errInitRunning) {
		m.queue.AddAfter(key, time.Second)
		return m.writeStatus(ctx, node, pod, sandbox, apiPod)
	}
	if errors.Is(err, errInitFailed) {
		// The status turns Failed; what still runs (sidecars) stops.
		if err := m.writeStatus(ctx, node, pod, sandbox, apiPod); err != nil {
			return err
		}
		return m.stopContainers(ctx, node, pod, pod.Status.PodIP)
	}
	if err != nil {
		return err
	}
	if err := m.actuate(ctx, node, pod, sandbox.Id, res); err != nil {
		return err
	}
	return m.writeStatus(ctx, node, pod, sandbox, apiPod)
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
func (m *Manager) ensureRunning(ctx context.Context, node Node, pod *corev1.Pod) (*runtimeapi.PodSandbox, error) {
	// Volumes first: the kubelet creates no sandbox for a pod whose volumes
	// cannot be set up.
	vols, err := m.setupVolumes(ctx, node, pod)
	if err != nil {
		return nil, err
	}
	sb, err := sandboxOf(ctx, node.Runtime, pod)
	if err != nil {
		return nil, err
	}
	config, err := sandboxConfig(node, pod)
	if err != nil {
		node.event(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		return nil, err
	}
	if sb == nil {
		// The resolver only matters to a new sandbox: the node's
		// resolv.conf is read then, not on every sync.
		var warnings []podcri.PodEvent
		if !node.Simulated { // nothing resolves in a simulated pod
			if config.DnsConfig, warnings, err = node.DNS.PodConfig(pod); err != nil {
				node.event(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
				return nil, err
			}
		}
		for _, w := range warnings {
			node.event(pod, corev1.EventTypeWarning, w.Reason, "%s", w.Message)
		}
		if _, err := node.Runtime.RunPodSandbox(ctx, config, ""); err != nil {
			node.event(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			return nil, fmt.Errorf("RunPodSandbox: %w", err)
		}
		if !node.Simulated && config.GetLinux().GetCgroupParent() != "" {
			// The pod's own cgroup (runc created it for the sandbox) gets the
			// pod-level limits; a failure is logged, the pod still runs.
			_, fsPath := node.podCgroup(pod)
			if err := setPodCgroup(fsPath, pod); err != nil {
				klog.FromContext(ctx).Error(err, "Setting the pod cgroup's limits", "pod", klog.KObj(pod))
			}
		}
		if sb, err = sandboxOf(ctx, node.Runtime, pod); err != nil || sb == nil {
			return nil, fmt.Errorf("sandbox of %s/%s not found after RunPodSandbox: %v", pod.Namespace, pod.Name, err)
		}
	}
	if node.PodDir != "" {
		if err := ensureEtcHosts(ctx, node, pod, sb.Id); err != nil {
			return nil, fmt.Errorf("writing the pod's /etc/hosts: %w", err)
		}
	}
	existing, err := containersOf(ctx, node.Runtime, sb.Id)
	if err != nil {
		return nil, err
	}
	// The downward API's status fields (hostIP(s), podIP(s)) are what this
	// node and the sandbox say, not the API's status, which has no IP
	// before the first status write: the kubelet fills them the same way.
	var envPod *corev1.Pod
	podForEnv := func() (*corev1.Pod, error) {
		if envPod != nil {
			return envPod, nil
		}
		st, err := node.Runtime.PodSandboxStatus(ctx, sb.Id, false)
		if err != nil {
			return nil, err
		}
		envPod = podcri.WithNodeIPs(pod, node.HostIP, st.GetStatus())
		return envPod, nil
	}
	start := func(c corev1.Container, kind containerKind) error {
		attempt := uint32(0)
		if prev := existing[c.Name]; len(prev) > 0 {
			if !m.shouldRestart(pod, c, prev[0], kind) && !m.stoppedForResize(pod.UID, prev[0].Id) {
				return nil
			}
			if wait := m.restartWait(pod.UID, c.Name); wait > 0 {
				node.event(pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID)
				m.queue.AddAfter(pod.Namespace+"/"+pod.Name, wait)
				return nil
			}
			attempt = prev[0].GetMetadata().GetAttempt() + 1
			// Keep the last dead container (its state is lastState), drop older ones.
			for _, old := range prev[1:] {
				if err := node.Runtime.RemoveContainer(ctx, old.Id); err != nil {
					return err
				}
			}
		}
		image, err := m.ensureImage(ctx, node, pod, c, config)
		if err != nil {
			return err
		}
		ep, err := podForEnv()
		if err != nil {
			return err
		}
		env, err := containerEnv(ctx, m.client, ep, c, node.Allocatable, serviceEnv(m.serviceIndexer(), pod))
		if err != nil {
			node.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", errorText(err))
			return err
		}
		uid, username, err := imageUser(ctx, node.Images, image)
		if err != nil {
			return err
		}
		if err := podcri.VerifyRunAsNonRoot(pod, &c, uid, username); err != nil {
			node.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
			return configError(c.Name, err.Error())
		}
		cc, err := containerConfig(node, pod, c, image, config, uid, username)
		if err != nil {
			node.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
			return configError(c.Name, err.Error())
		}
		targetNamespace(pod, c.Name, cc, existing)
		if vols != nil {
			mounts, err := volumes.Mounts(pod, &c, vols, env)
			if err != nil {
				node.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
				return configError(c.Name, err.Error())
			}
			cc.Mounts = append(cc.Mounts, mounts...)
		}
		for _, k := range sortedEnv(env) {
			cc.Envs = append(cc.Envs, &runtimeapi.KeyValue{Key: k, Value: []byte(env[k])})
		}
		// $(VAR) in command and args are the container's variables, as the
		// kubelet expands them ($$ escapes, unknown names stay as written).
		cc.Command, cc.Args = expandAll(c.Command, env), expandAll(c.Args, env)
		cc.Metadata.Attempt = attempt
		if cc.LogPath != "" {
			cc.LogPath = filepath.Join(c.Name, fmt.Sprintf("%d.log", attempt))
		}
		if mount := etcHostsMount(node, pod, &c); mount != nil {
			cc.Mounts = append(cc.Mounts, mount)
		}
		if mount, err := terminationLogMount(node, pod, c, attempt); err != nil {
			return err
		} else if mount != nil {
			cc.Mounts = append(cc.Mounts, mount)
		}
		id, err := node.Runtime.CreateContainer(ctx, sb.Id, cc, config)
		if err != nil {
			node.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
			return &waitError{c.Name, "CreateContainerError", err.Error()}
		}
		node.event(pod, corev1.EventTypeNormal, "Created", "Created container: %s", c.Name)
		if err := node.Runtime.StartContainer(ctx, id); err != nil {
			// The runtime keeps the container, exited (StartError): the next
			// sync restarts it with back-off, as the kubelet does.
			node.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
			return &waitError{c.Name, "RunContainerError", err.Error()}
		}
		node.event(pod, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
		if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
			if err := m.postStart(ctx, node, pod, c, id, sb); err != nil {
				return err
			}
		}
		if kind != appContainer && node.Simulated {
			return node.Runtime.StopContainer(ctx, id, 0)
		}
		return nil
	}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			if err := start(c, appContainer); err != nil { // a sidecar: started, then kept running
				return nil, err
			}
			continue
		}
		if err := start(c, initContainer); err != nil {
			return nil, err
		}
		// The next container starts only once this one has exited 0. One
		// that failed is restarted (with back-off) by a later sync, or
		// under restartPolicy Never fails the pod (its status says so).
		if err := initOutcome(ctx, node.Runtime, sb.Id, c.Name, pod.Spec.RestartPolicy); err != nil {
			return sb, err
		}
	}
	for _, c := range pod.Spec.Containers {
		if err := start(c, appContainer); err != nil {
			return nil, err
		}
	}
	// Ephemeral containers (kubectl debug) run once, never restarted, in
	// the target container's process namespace when one is named.
	for _, ec := range pod.Spec.EphemeralContainers {
		if err := start(corev1.Container(ec.EphemeralContainerCommon), ephemeralContainer); err != nil {
			return nil, err
		}
	}
	return sb, nil
}

// targetNamespace makes an ephemeral container share the process namespace
// of its target container (kubectl debug --target).
func targetNamespace(pod *corev1.Pod, name string, cc *runtimeapi.ContainerConfig, existing map[string][]*runtimeapi.ContainerStatus) {
	for _, ec := range pod.Spec.EphemeralContainers {
		if ec.Name != name || ec.TargetContainerName == "" {
			continue
		}
		if target := existing[ec.TargetContainerName]; len(target) > 0 && target[0].State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			old := cc.Linux.SecurityContext.NamespaceOptions
			cc.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Network: old.GetNetwork(), Ipc: old.GetIpc(),
				Pid: runtimeapi.NamespaceMode_TARGET, TargetId: target[0].Id, UsernsOptions: old.GetUsernsOptions()}
		}
	}
}

// errInitRunning says the pod waits for an init container (running, or to
// be restarted after failing); the status is still written and the pod
// looked at again shortly. errInitFailed says one failed under restartPolicy
// Never: the pod has failed, and its status says so.
var (
	errInitRunning = fmt.Errorf("init container still running")
	errInitFailed  = fmt.Errorf("init container failed")
)

// initOutcome is nil when the named init container has exited 0, else why
// the pod cannot go on (errInitRunning or errInitFailed).
func initOutcome(ctx context.Context, rt internalapi.RuntimeService, sandboxID, name string, policy corev1.RestartPolicy) error {
	cs, err := containersOf(ctx, rt, sandboxID)
	if err != nil {
		return err
	}
	if len(cs[name]) == 0 || cs[name][0].State != runtimeapi.ContainerState_CONTAINER_EXITED {
		return errInitRunning
	}
	switch {
	case cs[name][0].ExitCode == 0:
		return nil
	case policy == corev1.RestartPolicyNever:
		return errInitFailed
	}
	return errInitRunning
}

// containersOf maps container name to its containers in a sandbox, newest
// (highest restart attempt) first.
func containersOf(ctx context.Context, rt internalapi.RuntimeService, sandboxID string) (map[string][]*runtimeapi.ContainerStatus, error) {
	list, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: sandboxID})
	if err != nil {
		return nil, err
	}
	out := map[string][]*runtimeapi.ContainerStatus{}
	for _, c := range list {
		st, err := rt.ContainerStatus(ctx, c.Id, false)
		if err != nil {
			return nil, err
		}
		out[c.Metadata.Name] = append(out[c.Metadata.Name], st.Status)
	}
	for _, l := range out {
		sort.Slice(l, func(i, j int) bool { return l[i].GetMetadata().GetAttempt() > l[j].GetMetadata().GetAttempt() })
	}
	return out, nil
}

// terminate stops the pod's containers gracefully (preStop hooks, then
// SIGTERM and SIGKILL after what is left of the grace period), removes
// them, the sandbox and the pod's files, then deletes the pod object
// (grace period 0, UID precondition: never someone else's pod of the same name).
func (m *Manager) terminate(ctx context.Context, node Node, pod *corev1.Pod) error {
	if err := m.stopWhileReporting(ctx, node, pod); err != nil {
		return err
	}
	// As the kubelet does, the last status says how each container ended
	// and the phase is terminal, before the pod object goes: clients
	// watching it (Jobs, the e2e suite) never see a deleted pod "running".
	if !isTerminal(pod) {
		if err := m.writeFinalStatus(ctx, node, pod); err != nil {
			return err
		}
	}
	if err := m.killPod(ctx, node, pod, pod.Status.PodIP); err != nil {
		return err
	}
	return m.deletePodNow(ctx, pod)
}

// stopWhileReporting stops the pod's containers within its grace period
// and, as the kubelet's status manager does meanwhile, keeps its status
// current: the first write turns its liveness and startup probes off (a
// terminating pod is not restarted), and each readiness change is written
// while its containers wind down (a container that stops serving on
// SIGTERM goes unready at once, so Services stop sending to it).
func (m *Manager) stopWhileReporting(ctx context.Context, node Node, pod *corev1.Pod) error {
	changed := make(chan struct{}, 1)
	m.withRecord(pod.UID, func(r *podRecord) { r.phase, r.changed = phaseTerminating, changed })
	report := func(latest *corev1.Pod) error {
		sb, err := sandboxOf(ctx, node.Runtime, pod)
		if err != nil || sb == nil {
			return err
		}
		if latest == nil { // the cache may lag behind the last write
			if latest, err = m.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{}); err != nil || latest.UID != pod.UID {
				return nil // gone: nothing to report to
			}
		}
		return m.writeStatus(ctx, node, latest, sb, latest)
	}
	if err := report(pod); err != nil {
		klog.FromContext(ctx).Error(err, "Writing a terminating pod's status", "pod", klog.KObj(pod))
	}
	done := make(chan error, 1)
	go func() { done <- m.stopContainers(ctx, node, pod, pod.Status.PodIP) }()
	for {
		select {
		case err := <-done:
			return err
		case <-changed:
			if err := report(nil); err != nil {
				klog.FromContext(ctx).Error(err, "Writing a terminating pod's status", "pod", klog.KObj(pod))
			}
		}
	}
}

// writeFinalStatus writes the status of a pod whose containers have all
// stopped: each one's exit, no restart back-off, and the terminal phase
// (Succeeded when every app container exited 0, else Failed).
func (m *Manager) writeFinalStatus(ctx context.Context, node Node, pod *corev1.Pod) error {
	m.withRecord(pod.UID, func(r *podRecord) { r.restarts, r.waitErr = containerBackoff{}, nil })
	// containerd reports a stopped container exited a moment after
	// StopContainer returns: wait for that (briefly) to report real exits.
	_ = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		running, err := runningContainers(ctx, node, pod)
		return err == nil && len(running) == 0, nil
	})
	sb, err := sandboxOf(ctx, node.Runtime, pod)
	if err != nil {
		return err
	}
	// The API's copy, not the cache's: a status written by the last sync
	// may not have reached the cache, and a conflict here would lose the
	// final status.
	latest, err := m.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if goneFromAPI(err) || (err == nil && latest.UID != pod.UID) {
		return nil // already gone (force-deleted, or deleted by an earlier sync the cache has not seen yet)
	}
	if err != nil {
		return err
	}
	err = m.writeStatusWith(ctx, node, latest, sb, latest, func(st *corev1.PodStatus) { podcri.TerminalStatus(st) })
	if apierrors.IsNotFound(err) {
		return nil // already gone (force-deleted)
	}
	return err
}

// killPod stops the pod's containers gracefully, removes them and the
// sandbox, forgets the pod and removes its files (volumes unmounted first).
func (m *Manager) killPod(ctx context.Context, node Node, pod *corev1.Pod, podIP string) error {
	if err := m.stopContainers(ctx, node, pod, podIP); err != nil {
		return err
	}
	if err := removeSandboxes(ctx, node.Runtime, map[string]string{labelUID: string(pod.UID)}); err != nil {
		return err
	}
	m.forget(pod.UID)
	if p := m.probes[node.Name]; p != nil {
		p.RemovePod(pod.UID)
	}
	return m.removePodFiles(node, pod.UID)
}

// deletePodNow deletes the pod object with grace period 0 (nothing runs
// for it any more) and its UID as precondition, never someone else's pod of
// the same name; gone or replaced already is fine.
func (m *Manager) deletePodNow(ctx context.Context, pod *corev1.Pod) error {
	err := m.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64), Preconditions: metav1.NewUIDPreconditions(string(pod.UID)),
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// goneFromAPI says whether a read of one of this node's pods failed because
// the pod no longer exists. Under the Node authorizer a deleted pod is not
// NotFound but Forbidden ("no relationship found between node and this
// object"): the authorizer's graph dropped the pod with its binding, and a
// pod in the agent's cache is bound to the agent's node.
func goneFromAPI(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsForbidden(err)
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
			// containerd marks a container exited a moment after StopContainer
			// returns, and refuses to remove it meanwhile; removing the
			// sandbox below removes whatever is left of it (the CRI's contract).
			_ = rt.RemoveContainer(ctx, c.Id)
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

// writeStatus computes the pod's status from the runtime and writes it to
// apiPod when it differs (nil: nowhere yet).
func (m *Manager) writeStatus(ctx context.Context, node Node, pod *corev1.Pod, sb *runtimeapi.PodSandbox, apiPod *corev1.Pod) error {
	return m.writeStatusWith(ctx, node, pod, sb, apiPod, nil)
}

// writeStatusWith writes the computed status after override changed it (an
// eviction's terminal status, written only once nothing runs).
func (m *Manager) writeStatusWith(ctx context.Context, node Node, pod *corev1.Pod, sb *runtimeapi.PodSandbox, apiPod *corev1.Pod, override func(*corev1.PodStatus)) error {
	if apiPod == nil {
		return nil // a static pod whose mirror the informer does not have yet
	}
	var sbStatus *runtimeapi.PodSandboxStatusResponse
	containers := map[string][]*runtimeapi.ContainerStatus{}
	if sb != nil { // nil: no sandbox yet, all containers waiting
		var err error
		if sbStatus, err = node.Runtime.PodSandboxStatus(ctx, sb.Id, false); err != nil {
			return err
		}
		if containers, err = containersOf(ctx, node.Runtime, sb.Id); err != nil {
			return err
		}
	}
	podIP := sbStatus.GetStatus().GetNetwork().GetIp()
	if pod.Spec.HostNetwork {
		podIP = node.HostIP // probes of a host-network pod go to the node's address
	}
	st := podcri.ComputeStatus(pod, node.HostIP, node.RuntimeName, sbStatus.GetStatus(), containers, m.waiting(pod.UID), m.messagesOf(node, pod, containers),
		m.probeStates(node, pod, podIP, containers), metav1.Now())
	withResizeStatus(&st, pod, m.resourcesOf(node, pod), apiPod.Status.Conditions, metav1.Now())
	if override != nil {
		override(&st)
	}
	if apiequality.Semantic.DeepEqual(st, apiPod.Status) {
		return nil
	}
	// A terminal phase is final, as the kubelet's status manager keeps it:
	// a later computation (a runtime still reporting a container it is
	// stopping, a cache behind the last write) never reverts it.
	final := isTerminal(apiPod)
	m.lookup(pod.UID, func(r *podRecord) { final = final || r.terminalWritten })
	if final && !isTerminal(&corev1.Pod{Status: st}) {
		return nil
	}
	updated := apiPod.DeepCopy()
	updated.Status = st
	_, err := m.client.CoreV1().Pods(apiPod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if err == nil && isTerminal(updated) {
		m.withRecord(pod.UID, func(r *podRecord) { r.terminalWritten = true })
	}
	if apierrors.IsConflict(err) {
		m.queue.AddAfter(apiPod.Namespace+"/"+apiPod.Name, 100*time.Millisecond)
		return nil
	}
	return err
}

// sandboxConfig is the CRI sandbox of a pod: its own network namespace, or the
// node's for hostNetwork (then with an empty hostname: the node's), and its
// security context. The caller adds the resolver when creating it.
func sandboxConfig(node Node, pod *corev1.Pod) (*runtimeapi.PodSandboxConfig, error) {
	if pod.Spec.HostUsers != nil && !*pod.Spec.HostUsers {
		// Running it in the host's user namespace would grant more than asked.
		return nil, fmt.Errorf("user podcri.Namespaces (hostUsers: false) are not supported by kubeparts-nodeagent")
	}
	config := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID)},
		Labels:   map[string]string{labelNamespace: pod.Namespace, labelName: pod.Name, labelUID: string(pod.UID)},
		Linux:    &runtimeapi.LinuxPodSandboxConfig{SecurityContext: podcri.SandboxSecurity(pod), Sysctls: podcri.Sysctls(pod)},
	}
	if !pod.Spec.HostNetwork {
		var err error
		if config.Hostname, err = podcri.SandboxHostname(pod, node.DNS.ClusterDomain); err != nil {
			return nil, err
		}
	}
	if node.CgroupParent != "" {
		config.Linux.CgroupParent, _ = node.podCgroup(pod)
	}
	if node.LogDir != "" {
		config.LogDirectory = filepath.Join(node.LogDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
	}
	return config, nil
}

func expandAll(in []string, env map[string]string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = fieldpath.Expand(v, env)
	}
	return out
}

// containerConfig is the CRI container of c: command, args, its log file,
// and its security context with the sandbox's podcri.Namespaces to join (the
// environment and mounts are added by the caller). uid and username are the
// image's user.
func containerConfig(node Node, pod *corev1.Pod, c corev1.Container, image string, sandbox *runtimeapi.PodSandboxConfig, uid *int64, username string) (*runtimeapi.ContainerConfig, error) {
	sc, err := podcri.ContainerSecurity(node.Security, pod, &c, uid, username, sandbox.GetLinux().GetSecurityContext().GetNamespaceOptions())
	if err != nil {
		return nil, err
	}
	cc := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: c.Name}, Image: &runtimeapi.ImageSpec{Image: image},
		Command: c.Command, Args: c.Args, WorkingDir: c.WorkingDir,
		// An open stdin (and a TTY) for kubectl attach, as the spec asks.
		Stdin: c.Stdin, StdinOnce: c.StdinOnce, Tty: c.TTY,
		Labels: map[string]string{labelContainer: c.Name, labelUID: string(pod.UID), labelNamespace: pod.Namespace, labelName: pod.Name},
		Linux:  &runtimeapi.LinuxContainerConfig{Resources: podcri.LinuxResources(c), SecurityContext: sc},
	}
	if sandbox.LogDirectory != "" {
		cc.LogPath = filepath.Join(c.Name, "0.log")
	}
	return cc, nil
}

// ensureImage returns the image reference to run, pulling it per the
// container's imagePullPolicy, with the kubelet's events (Pulling, Pulled,
// Failed, BackOff) and waiting reasons (ErrImageNeverPull, ErrImagePull,
// then ImagePullBackOff between retries).
func (m *Manager) ensureImage(ctx context.Context, node Node, pod *corev1.Pod, c corev1.Container, sandbox *runtimeapi.PodSandboxConfig) (string, error) {
	spec := &runtimeapi.ImageSpec{Image: c.Image}
	st, err := node.Images.ImageStatus(ctx, spec, false)
	if err != nil {
		return "", fmt.Errorf("image status %s: %w", c.Image, err)
	}
	present := st.GetImage() != nil
	switch {
	case present && c.ImagePullPolicy != corev1.PullAlways:
		node.event(pod, corev1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.Image)
		return st.GetImage().GetId(), nil
	case !present && c.ImagePullPolicy == corev1.PullNever:
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		node.event(pod, corev1.EventTypeWarning, "ErrImageNeverPull", "%s", msg)
		node.event(pod, corev1.EventTypeWarning, "Failed", "Error: ErrImageNeverPull")
		return "", &waitError{c.Name, "ErrImageNeverPull", msg}
	}
	if wait := m.pullWait(pod.UID, c.Name); wait > 0 {
		node.event(pod, corev1.EventTypeNormal, "BackOff", "Back-off pulling image %q", c.Image)
		node.event(pod, corev1.EventTypeWarning, "Failed", "Error: ImagePullBackOff")
		return "", &waitError{c.Name, "ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q", c.Image)}
	}
	node.event(pod, corev1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	start := time.Now()
	secrets, err := m.pullSecrets(ctx, node, pod)
	if err != nil {
		return "", &waitError{c.Name, "ErrImagePull", err.Error()}
	}
	ref, err := pullWithSecrets(ctx, node.Images, spec, sandbox, secrets)
	if err != nil {
		node.event(pod, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
		node.event(pod, corev1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		return "", &waitError{c.Name, "ErrImagePull", err.Error()}
	}
	m.withRecord(pod.UID, func(r *podRecord) { delete(r.pulls, c.Name) })
	node.event(pod, corev1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s", c.Image, time.Since(start).Round(time.Millisecond))
	return ref, nil
}

// event records an event about pod from this node, if it has a recorder.
func (n Node) event(pod *corev1.Pod, eventType, reason, format string, args ...any) {
	if n.Recorder != nil {
		n.Recorder.Eventf(pod, eventType, reason, format, args...)
	}
}

// errorText is the message of a waiting error without the container
// prefix, as the kubelet words it ("Error: configmap \"x\" not found").
func errorText(err error) string {
	var ce *waitError
	if errors.As(err, &ce) {
		return ce.msg
	}
	return err.Error()
}
