// Package node keeps a node's API objects: it registers the Node, renews its
// Lease in kube-node-lease every RenewInterval, and reports its status and
// conditions as the kubelet does (a status update when something changed or
// every StatusReportInterval; the Lease is the frequent heartbeat).
package node

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
)

// Stock cadence: the Lease is renewed every 10s and lasts 40s; the status is
// posted when it changes, or every 5 minutes at the latest.
const (
	RenewInterval        = 10 * time.Second
	LeaseDuration        = 40
	StatusReportInterval = 5 * time.Minute
)

// Config describes the node to register.
type Config struct {
	Name string
	// Capacity is what the machine has; Allocatable is Capacity minus
	// Reserved (system and kube reserved, and the hard eviction thresholds).
	Capacity, Reserved corev1.ResourceList
	Addresses          []corev1.NodeAddress
	Labels             map[string]string
	Taints             []corev1.Taint
	// KubeletPort is advertised in status.daemonEndpoints.
	KubeletPort int32
	// AgentVersion goes to nodeInfo.kubeletVersion; RuntimeVersion is the CRI runtime's "name://version".
	AgentVersion, RuntimeVersion string
	// ProviderID is the Node's spec.providerID (--provider-id).
	ProviderID string
	// SystemInfo is the machine's part of nodeInfo (OS image, kernel,
	// machine, system and boot IDs: SystemInfo()); empty for simulated nodes.
	SystemInfo corev1.NodeSystemInfo
	// PodCIDR is the node's pod range when the agent decides it (simulated
	// nodes). Empty: the range is the control plane's (node IPAM sets
	// spec.podCIDR), and the agent hands it to the runtime as it appears.
	PodCIDR string
	// Pressure says when the node is short of memory, disk or PIDs.
	Pressure Pressure
	// ExternalCloudProvider: a cloud-controller-manager sets the node's
	// addresses. Registration says which IP the node was given (the
	// provided-node-ip annotation, which the cloud checks), and once the
	// cloud has written addresses they are kept, as the kubelet does.
	ExternalCloudProvider bool
}

// Runtime is what the node needs to know of its container runtime.
type Runtime interface {
	// Ready reports whether the runtime and its network are ready, with a reason when not.
	Ready(ctx context.Context) (runtimeReady, networkReady bool, msg string)
	// Images lists the images the runtime holds, for status.images.
	Images(ctx context.Context) ([]corev1.ContainerImage, error)
	// UpdatePodCIDR tells the runtime the node's pod ranges (comma
	// separated), as the kubelet does through the CRI's UpdateRuntimeConfig:
	// containerd then writes its CNI config from its template.
	UpdatePodCIDR(ctx context.Context, cidrs string) error
}

// Pressure reports the node's resource pressure (the eviction signals);
// nil reports none, as for simulated nodes.
type Pressure interface {
	Pressure() (memory, disk, pid bool)
}

// maxImages is how many images status.images lists, the largest first (the kubelet's limit).
const maxImages = 50

// Keeper registers and heartbeats one node.
type Keeper struct {
	client  kubeclient.Interface
	cfg     Config
	runtime Runtime
	now     func() time.Time

	lastPosted time.Time
	lastStatus corev1.NodeStatus
	registered bool
	renewed    time.Time
	// podCIDR is what the runtime was last told (UpdatePodCIDR).
	podCIDR string
	// cloudAddresses are what the cloud-controller-manager set (external
	// cloud provider only).
	cloudAddresses []corev1.NodeAddress
	// conditions remembers each condition's status and since when, for
	// lastTransitionTime.
	conditions map[corev1.NodeConditionType]conditionState
}

type conditionState struct {
	status corev1.ConditionStatus
	since  metav1.Time
}

// NewKeeper returns a keeper for cfg.
func NewKeeper(client kubeclient.Interface, cfg Config, rt Runtime) *Keeper {
	return &Keeper{client: client, cfg: cfg, runtime: rt, now: time.Now, conditions: map[corev1.NodeConditionType]conditionState{}}
}

// FastInterval is how often a node that has not been Ready yet syncs, for
// at most FastPeriod after start (the kubelet's fast status update): a new
// node should wait a heartbeat neither to learn its pod range nor to say it
// is Ready. The Lease is still renewed every RenewInterval.
const (
	FastInterval = 500 * time.Millisecond
	FastPeriod   = 2 * time.Minute
)

// Run registers the node, then renews the Lease and syncs the status until
// ctx ends. API errors are retried on the next tick.
func (k *Keeper) Run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithValues("node", k.cfg.Name)
	start := k.now()
	for {
		k.sync(klog.NewContext(ctx, logger))
		interval := RenewInterval
		if !k.reportedReady() && k.now().Sub(start) < FastPeriod {
			interval = FastInterval
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// sync is one tick of Run.
func (k *Keeper) sync(ctx context.Context) {
	logger := klog.FromContext(ctx)
	if !k.registered {
		if err := k.register(ctx); err != nil {
			logger.Error(err, "Registering the node")
			return
		}
		k.registered = true
	}
	if k.cfg.PodCIDR == "" && k.podCIDR == "" {
		// Until the runtime has its pod range, look for it on every tick;
		// syncStatus looks whenever it reads the Node anyway.
		if n, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.Name, metav1.GetOptions{}); err != nil {
			logger.Error(err, "Reading the node for its pod CIDR")
		} else {
			k.syncPodCIDR(ctx, n)
		}
	}
	if err := k.syncStatus(ctx); apierrors.IsNotFound(err) {
		// Deleted under the agent: register again, as before the first tick.
		k.registered = false
	} else if err != nil {
		logger.Error(err, "Updating the node status")
	}
	if k.now().Sub(k.renewed) >= RenewInterval {
		if err := k.renewLease(ctx); err != nil {
			logger.Error(err, "Renewing the node lease")
		} else {
			k.renewed = k.now()
		}
	}
}

// reportedReady: the last status posted says Ready.
func (k *Keeper) reportedReady() bool {
	for _, c := range k.lastStatus.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// syncPodCIDR hands the Node's pod ranges to the runtime once they are set
// (spec.podCIDRs cannot change once set; a failed call is retried on the
// next tick).
func (k *Keeper) syncPodCIDR(ctx context.Context, n *corev1.Node) {
	cidrs := strings.Join(n.Spec.PodCIDRs, ",")
	if k.cfg.PodCIDR != "" || cidrs == "" || cidrs == k.podCIDR {
		return
	}
	if err := k.runtime.UpdatePodCIDR(ctx, cidrs); err != nil {
		klog.FromContext(ctx).Error(err, "Handing the pod CIDR to the runtime", "podCIDR", cidrs)
		return
	}
	klog.FromContext(ctx).Info("Pod CIDR handed to the runtime", "podCIDR", cidrs)
	k.podCIDR = cidrs
}

func (k *Keeper) allocatable() corev1.ResourceList {
	return Allocatable(k.cfg.Capacity, k.cfg.Reserved)
}

// Allocatable is what pods may use: capacity minus what is reserved, never negative.
func Allocatable(capacity, systemReserved corev1.ResourceList) corev1.ResourceList {
	out := capacity.DeepCopy()
	for name, reserved := range systemReserved {
		if q, ok := out[name]; ok {
			q.Sub(reserved)
			if q.Sign() < 0 {
				q = resource.MustParse("0")
			}
			out[name] = q
		}
	}
	return out
}

// register creates the Node if it does not exist; an existing Node (a
// restart) is adopted as it is.
func (k *Keeper) register(ctx context.Context) error {
	labels := map[string]string{
		corev1.LabelHostname: k.cfg.Name, corev1.LabelOSStable: runtime.GOOS, corev1.LabelArchStable: runtime.GOARCH,
	}
	for key, v := range k.cfg.Labels {
		labels[key] = v
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: k.cfg.Name, Labels: labels},
		Spec:       corev1.NodeSpec{Taints: k.cfg.Taints, PodCIDR: k.cfg.PodCIDR, ProviderID: k.cfg.ProviderID},
	}
	if k.cfg.PodCIDR != "" {
		n.Spec.PodCIDRs = []string{k.cfg.PodCIDR}
	}
	if k.cfg.ExternalCloudProvider {
		for _, a := range k.cfg.Addresses {
			if a.Type == corev1.NodeInternalIP {
				n.Annotations = map[string]string{annotationProvidedNodeIP: a.Address}
				break
			}
		}
	}
	_, err := k.client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// status computes the node's status now, with the kubelet's condition
// reasons and messages.
func (k *Keeper) status(ctx context.Context) corev1.NodeStatus {
	runtimeReady, networkReady, msg := k.runtime.Ready(ctx)
	now := metav1.NewTime(k.now())
	cond := func(t corev1.NodeConditionType, status corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: status, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		if prev, seen := k.conditions[t]; seen && prev.status == status {
			c.LastTransitionTime = prev.since
		} else {
			k.conditions[t] = conditionState{status, now}
		}
		return c
	}
	// pressure is a pressure condition: True (with the bad reason) under pressure.
	pressure := func(t corev1.NodeConditionType, under bool, okReason, okMsg, badReason, badMsg string) corev1.NodeCondition {
		if under {
			return cond(t, corev1.ConditionTrue, badReason, badMsg)
		}
		return cond(t, corev1.ConditionFalse, okReason, okMsg)
	}
	ready := cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubeparts-nodeagent is posting ready status")
	if !runtimeReady || !networkReady {
		ready = cond(corev1.NodeReady, corev1.ConditionFalse, "KubeletNotReady", "container runtime not ready: "+msg)
	}
	var memory, disk, pid bool
	if k.cfg.Pressure != nil {
		memory, disk, pid = k.cfg.Pressure.Pressure()
	}
	st := corev1.NodeStatus{
		Capacity:    k.cfg.Capacity,
		Allocatable: k.allocatable(),
		Addresses:   k.addresses(),
		Conditions: []corev1.NodeCondition{
			pressure(corev1.NodeMemoryPressure, memory, "KubeletHasSufficientMemory", "kubelet has sufficient memory available", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
			pressure(corev1.NodeDiskPressure, disk, "KubeletHasNoDiskPressure", "kubelet has no disk pressure", "KubeletHasDiskPressure", "kubelet has disk pressure"),
			pressure(corev1.NodePIDPressure, pid, "KubeletHasSufficientPID", "kubelet has sufficient PID available", "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
			ready,
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: k.cfg.KubeletPort}},
		NodeInfo:        k.cfg.SystemInfo,
	}
	st.NodeInfo.OperatingSystem, st.NodeInfo.Architecture = runtime.GOOS, runtime.GOARCH
	st.NodeInfo.KubeletVersion, st.NodeInfo.ContainerRuntimeVersion = k.cfg.AgentVersion, k.cfg.RuntimeVersion
	if images, err := k.runtime.Images(ctx); err == nil {
		sort.SliceStable(images, func(i, j int) bool { return images[i].SizeBytes > images[j].SizeBytes })
		st.Images = images[:min(len(images), maxImages)]
	} else {
		st.Images = k.lastStatus.Images
	}
	return st
}

// The names k8s.io/cloud-provider/api gives these (not imported: the agent
// links as little as it can).
const (
	// TaintExternalCloudProvider marks a node a cloud-controller-manager has
	// not initialized yet.
	TaintExternalCloudProvider = "node.cloudprovider.kubernetes.io/uninitialized"
	annotationProvidedNodeIP   = "alpha.kubernetes.io/provided-node-ip"
)

// addresses are the cloud's once it has written some, else the agent's own.
func (k *Keeper) addresses() []corev1.NodeAddress {
	if len(k.cloudAddresses) > 0 {
		return k.cloudAddresses
	}
	return k.cfg.Addresses
}

// syncStatus posts the status when anything but heartbeat times changed, or
// when the last post is StatusReportInterval old.
func (k *Keeper) syncStatus(ctx context.Context) error {
	st := k.status(ctx)
	if !k.lastPosted.IsZero() && k.now().Sub(k.lastPosted) < StatusReportInterval && sameIgnoringHeartbeats(st, k.lastStatus) {
		return nil
	}
	n, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	k.syncPodCIDR(ctx, n)
	if k.cfg.ExternalCloudProvider && len(n.Status.Addresses) > 0 {
		k.cloudAddresses = n.Status.Addresses
		st.Addresses = n.Status.Addresses
	}
	n.Status = withForeignCapacity(st, n.Status)
	if _, err := k.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		return err
	}
	k.lastPosted, k.lastStatus = k.now(), st
	return nil
}

// withForeignCapacity is st with the capacity entries others put in the
// Node's status kept (extended resources advertised by a PATCH of
// status.capacity, the documented way): the kubelet updates the Node in
// place and leaves what it does not own; their allocatable is their
// capacity (nothing is reserved of them), as the kubelet sets it.
func withForeignCapacity(st corev1.NodeStatus, current corev1.NodeStatus) corev1.NodeStatus {
	var capacity, allocatable corev1.ResourceList
	for name, q := range current.Capacity {
		if _, ours := st.Capacity[name]; ours {
			continue
		}
		if capacity == nil {
			capacity, allocatable = st.Capacity.DeepCopy(), st.Allocatable.DeepCopy()
		}
		capacity[name], allocatable[name] = q, q
	}
	if capacity != nil {
		st.Capacity, st.Allocatable = capacity, allocatable
	}
	return st
}

func sameIgnoringHeartbeats(a, b corev1.NodeStatus) bool {
	a, b = *a.DeepCopy(), *b.DeepCopy()
	for _, s := range []*corev1.NodeStatus{&a, &b} {
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
	}
	return apiequality.Semantic.DeepEqual(a, b)
}

// renewLease creates or renews the node's Lease, owned by the Node so it goes
// with it.
func (k *Keeper) renewLease(ctx context.Context) error {
	leases := k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(k.now())
	l, err := leases.Get(ctx, k.cfg.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		n, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: k.cfg.Name, Namespace: corev1.NamespaceNodeLease,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(k.cfg.Name), LeaseDurationSeconds: ptr.To[int32](LeaseDuration), RenewTime: &now},
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = ptr.To(k.cfg.Name), ptr.To[int32](LeaseDuration), &now
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	return nil
}
