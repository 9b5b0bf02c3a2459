package nodelifecycle

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/kubeparts/kubeparts/controllers/internal/podindex"
)

// Name is the controller's canonical kube-controller-manager name.
const Name = "node-lifecycle-controller"

// Options mirror kube-controller-manager's flags, with its defaults.
type Options struct {
	MonitorPeriod          time.Duration // --node-monitor-period, 5s
	GracePeriod            time.Duration // --node-monitor-grace-period, 50s
	StartupGracePeriod     time.Duration // --node-startup-grace-period, 60s
	EvictionRate           float32       // --node-eviction-rate, 0.1 nodes/s
	SecondaryEvictionRate  float32       // --secondary-node-eviction-rate, 0.01 nodes/s
	UnhealthyZoneThreshold float32       // --unhealthy-zone-threshold, 0.55
	LargeClusterThreshold  int           // --large-cluster-size-threshold, 50
}

// DefaultOptions are kube-controller-manager's defaults.
func DefaultOptions() Options {
	return Options{MonitorPeriod: 5 * time.Second, GracePeriod: 50 * time.Second, StartupGracePeriod: 60 * time.Second,
		EvictionRate: 0.1, SecondaryEvictionRate: 0.01, UnhealthyZoneThreshold: 0.55, LargeClusterThreshold: 50}
}

// Validate rejects values the controller cannot work with.
func (o Options) Validate() error {
	switch {
	case o.MonitorPeriod <= 0 || o.GracePeriod <= 0 || o.StartupGracePeriod <= 0:
		return fmt.Errorf("node monitor periods must be positive")
	case o.GracePeriod < o.MonitorPeriod:
		return fmt.Errorf("--node-monitor-grace-period (%s) must not be shorter than --node-monitor-period (%s)", o.GracePeriod, o.MonitorPeriod)
	case o.EvictionRate < 0 || o.SecondaryEvictionRate < 0:
		return fmt.Errorf("eviction rates must not be negative")
	case o.UnhealthyZoneThreshold <= 0 || o.UnhealthyZoneThreshold > 1:
		return fmt.Errorf("--unhealthy-zone-threshold must be in (0, 1]")
	}
	return nil
}

// Controller monitors node health from its own loop, as upstream: zone health needs the
// whole picture at once.
type Controller struct {
	Client   client.Client
	Recorder events.EventRecorder
	Clock    clock.Clock
	Options  Options

	beats    *heartbeats
	mu       sync.Mutex
	limiters map[string]*zoneLimiter
}

type zoneLimiter struct {
	rate    float32
	limiter flowcontrol.RateLimiter
}

// ZoneState is a zone's health as the stock controller names it.
type ZoneState string

// Zone states.
const (
	ZoneNormal            ZoneState = "Normal"
	ZonePartialDisruption ZoneState = "PartialDisruption"
	ZoneFullDisruption    ZoneState = "FullDisruption"
)

// SetupWithManager adds the monitor loop to the manager (it runs on the leader only).
func (c *Controller) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := c.Options.Validate(); err != nil {
		return err
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	c.beats = newHeartbeats()
	c.limiters = map[string]*zoneLimiter{}
	if err := podindex.Register(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	// Informers for what the loop reads, started with the cache.
	for _, obj := range []client.Object{&corev1.Node{}, &coordinationv1.Lease{}, &corev1.Pod{}} {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			return err
		}
	}
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return fmt.Errorf("%s: caches did not sync", Name)
		}
		tick := time.NewTicker(c.Options.MonitorPeriod)
		defer tick.Stop()
		for {
			if err := c.Monitor(ctx); err != nil {
				log.FromContext(ctx).Error(err, "node health pass failed", "controller", Name)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
	}))
}

// Monitor runs one pass over every node.
func (c *Controller) Monitor(ctx context.Context) error {
	var nodes corev1.NodeList
	if err := c.Client.List(ctx, &nodes); err != nil {
		return err
	}
	var leases coordinationv1.LeaseList
	if err := c.Client.List(ctx, &leases, client.InNamespace(corev1.NamespaceNodeLease)); err != nil {
		return err
	}
	leaseOf := map[string]*coordinationv1.Lease{}
	for i := range leases.Items {
		leaseOf[leases.Items[i].Name] = &leases.Items[i]
	}
	now := c.Clock.Now()
	var errs []error
	// First bring conditions up to date, then judge zones on the result.
	for i := range nodes.Items {
		node := &nodes.Items[i]
		probed := c.beats.observe(node, leaseOf[node.Name], now)
		if err := c.markUnknownIfSilent(ctx, node, probed, now); err != nil {
			errs = append(errs, err)
		}
	}
	c.beats.keepOnly(nodes.Items)
	states := zoneStates(nodes.Items, c.Options.UnhealthyZoneThreshold)
	allDisrupted := len(states) > 0
	for _, s := range states {
		allDisrupted = allDisrupted && s == ZoneFullDisruption
	}
	for i := range nodes.Items {
		node := &nodes.Items[i]
		if err := c.syncTaints(ctx, node, states, allDisrupted, len(nodes.Items), now); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d nodes failed: %v", len(errs), errs[0])
	}
	return nil
}

var watchedConditions = []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure}

// markUnknownIfSilent sets the node's conditions Unknown once no heartbeat has moved for
// the grace period (the startup grace period for a node that never reported), and marks
// its pods not ready when it goes silent.
func (c *Controller) markUnknownIfSilent(ctx context.Context, node *corev1.Node, probed, now time.Time) error {
	grace := c.Options.GracePeriod
	ready := condition(node, corev1.NodeReady)
	if ready == nil {
		grace = c.Options.StartupGracePeriod
		if created := node.CreationTimestamp.Time; created.After(probed) {
			probed = created
		}
	}
	if !now.After(probed.Add(grace)) {
		return nil
	}
	if ready != nil && ready.Status == corev1.ConditionUnknown {
		return nil // already marked
	}
	cp := node.DeepCopy()
	ts := metav1.NewTime(now)
	for _, t := range watchedConditions {
		cur := condition(cp, t)
		if cur == nil {
			cp.Status.Conditions = append(cp.Status.Conditions, corev1.NodeCondition{
				Type: t, Status: corev1.ConditionUnknown, Reason: "NodeStatusNeverUpdated",
				Message: "Kubelet never posted node status.", LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: ts,
			})
			continue
		}
		if cur.Status != corev1.ConditionUnknown {
			cur.Status, cur.Reason, cur.Message, cur.LastTransitionTime = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status.", ts
		}
	}
	if err := c.Client.Status().Update(ctx, cp); err != nil {
		return err
	}
	*node = *cp
	c.Recorder.Eventf(node, nil, corev1.EventTypeNormal, "NodeNotReady", "NodeNotReady", "Node %s status is now: NodeNotReady", node.Name)
	return c.markPodsNotReady(ctx, node.Name)
}

// markPodsNotReady sets Ready=False on the node's pods: nobody reports on them any more.
// The kubelet restores them when it is back.
func (c *Controller) markPodsNotReady(ctx context.Context, nodeName string) error {
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.MatchingFields{podindex.NodeName: nodeName}); err != nil {
		return err
	}
	now := metav1.NewTime(c.Clock.Now())
	for i := range pods.Items {
		p := &pods.Items[i]
		idx := slices.IndexFunc(p.Status.Conditions, func(c corev1.PodCondition) bool { return c.Type == corev1.PodReady })
		if idx < 0 || p.Status.Conditions[idx].Status == corev1.ConditionFalse {
			continue
		}
		cp := p.DeepCopy()
		cp.Status.Conditions[idx].Status = corev1.ConditionFalse
		cp.Status.Conditions[idx].LastTransitionTime = now
		if err := c.Client.Status().Update(ctx, cp); err != nil {
			return err
		}
		c.Recorder.Eventf(cp, nil, corev1.EventTypeWarning, "NodeNotReady", "MarkPodNotReady", "Node is not ready")
	}
	return nil
}

// syncTaints makes the node's managed taints match its conditions; adding a NoExecute
// taint waits for the zone's eviction rate limiter, and none is kept when every zone is
// fully disrupted (then the control plane is the likelier culprit).
func (c *Controller) syncTaints(ctx context.Context, node *corev1.Node, states map[string]ZoneState, allDisrupted bool, clusterSize int, now time.Time) error {
	want := wantedNoExecute(node)
	if allDisrupted {
		want = nil
	}
	if want != nil && !hasTaint(node, corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute) && !hasTaint(node, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) {
		zone := zoneOf(node)
		if !c.limiter(zone, c.rateFor(states[zone], clusterSize)).TryAccept() {
			want = nil // the next pass tries again
		}
	}
	taints := reconcileTaints(node, want, metav1.NewTime(now))
	if equality.Semantic.DeepEqual(taints, node.Spec.Taints) || (len(taints) == 0 && len(node.Spec.Taints) == 0) {
		return nil
	}
	cp := node.DeepCopy()
	cp.Spec.Taints = taints
	return c.Client.Update(ctx, cp)
}

func hasTaint(node *corev1.Node, key string, effect corev1.TaintEffect) bool {
	return slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == key && t.Effect == effect })
}

// rateFor is the zone's tainting rate: normal, slowed in a large partially disrupted
// zone, stopped in a small one.
func (c *Controller) rateFor(s ZoneState, clusterSize int) float32 {
	if s == ZonePartialDisruption {
		if clusterSize > c.Options.LargeClusterThreshold {
			return c.Options.SecondaryEvictionRate
		}
		return 0
	}
	return c.Options.EvictionRate
}

func (c *Controller) limiter(zone string, rate float32) flowcontrol.RateLimiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	zl, ok := c.limiters[zone]
	if !ok || zl.rate != rate {
		if rate == 0 {
			zl = &zoneLimiter{rate: 0, limiter: flowcontrol.NewFakeNeverRateLimiter()}
		} else {
			zl = &zoneLimiter{rate: rate, limiter: flowcontrol.NewTokenBucketRateLimiter(rate, 1)}
		}
		c.limiters[zone] = zl
	}
	return zl.limiter
}

func zoneOf(node *corev1.Node) string {
	return node.Labels[corev1.LabelTopologyRegion] + "/" + node.Labels[corev1.LabelTopologyZone]
}

// zoneStates judges each zone: fully disrupted when none of its nodes is ready,
// partially when more than two are not ready and they make up at least the threshold.
func zoneStates(nodes []corev1.Node, threshold float32) map[string]ZoneState {
	total, notReady := map[string]int{}, map[string]int{}
	for i := range nodes {
		z := zoneOf(&nodes[i])
		total[z]++
		if c := condition(&nodes[i], corev1.NodeReady); c == nil || c.Status != corev1.ConditionTrue {
			notReady[z]++
		}
	}
	out := map[string]ZoneState{}
	for z, n := range total {
		switch {
		case notReady[z] == n && n > 0:
			out[z] = ZoneFullDisruption
		case notReady[z] > 2 && float32(notReady[z])/float32(n) >= threshold:
			out[z] = ZonePartialDisruption
		default:
			out[z] = ZoneNormal
		}
	}
	return out
}
