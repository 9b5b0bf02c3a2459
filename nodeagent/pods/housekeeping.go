package pods

import (
	"context"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// housekeepingInterval is how often orphans are looked for (the kubelet's
// housekeeping runs every 2 s; orphans are rare, so less often here).
const housekeepingInterval = 30 * time.Second

// housekeeping removes what belongs to no pod the node runs any more: the
// sandboxes and containers, and the pod directories (volumes unmounted), of
// pods deleted while the agent was not running, as the kubelet's
// housekeeping does.
func (m *Manager) housekeeping(ctx context.Context) {
	logger := klog.FromContext(ctx)
	known := map[types.UID]bool{}
	pods, err := m.pods.List(labels.Everything())
	if err != nil {
		return
	}
	for _, p := range pods {
		known[p.UID] = true
	}
	m.mu.Lock()
	for _, byKey := range m.static {
		for _, p := range byKey {
			known[p.UID] = true
		}
	}
	for _, p := range m.staticRemoved {
		known[p.UID] = true // being removed by its own sync
	}
	m.mu.Unlock()
	for _, node := range m.nodes {
		orphans := map[types.UID]bool{}
		sandboxes, err := node.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{})
		if err != nil {
			logger.Error(err, "Housekeeping: listing sandboxes", "node", node.Name)
			continue
		}
		for _, sb := range sandboxes {
			if uid := types.UID(sb.GetLabels()[labelUID]); uid != "" && !known[uid] {
				orphans[uid] = true
			}
		}
		if node.PodDir != "" {
			entries, _ := os.ReadDir(node.PodDir)
			for _, e := range entries {
				if uid := types.UID(e.Name()); e.IsDir() && !known[uid] {
					orphans[uid] = true
				}
			}
		}
		for uid := range orphans {
			logger.Info("Removing an orphaned pod", "node", node.Name, "podUID", uid)
			if err := removeSandboxes(ctx, node.Runtime, map[string]string{labelUID: string(uid)}); err != nil {
				logger.Error(err, "Housekeeping: removing sandboxes", "podUID", uid)
				continue
			}
			m.forget(uid)
			if p := m.probes[node.Name]; p != nil {
				p.RemovePod(uid)
			}
			if err := m.removePodFiles(node, uid); err != nil {
				logger.Error(err, "Housekeeping: removing pod files", "podUID", uid)
			}
		}
	}
	// The records of pods gone with nothing left on the node (force-
	// deleted mid-eviction, say, or a deletion the watch missed) go too.
	m.mu.Lock()
	var gone []types.UID
	for uid := range m.records {
		if !known[uid] {
			gone = append(gone, uid)
		}
	}
	m.mu.Unlock()
	for _, uid := range gone {
		m.forget(uid)
	}
}
