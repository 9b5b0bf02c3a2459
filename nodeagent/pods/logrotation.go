package pods

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/kubeparts/kubeparts/nodeagent/crilog"
)

// logRotationInterval is how often the kubelet's container log manager
// looks at the logs' sizes.
const logRotationInterval = 10 * time.Second

// rotateLogs rotates the logs of the running containers of every node that
// bounds them (crilog.Rotate); the runtime reopens each rotated log.
func (m *Manager) rotateLogs(ctx context.Context) {
	for _, n := range m.nodes {
		if n.LogMaxSize <= 0 || n.LogDir == "" {
			continue
		}
		logger := klog.FromContext(ctx).WithValues("node", n.Name)
		list, err := n.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
		if err != nil {
			logger.Error(err, "Listing containers for log rotation")
			continue
		}
		for _, c := range list {
			st, err := n.Runtime.ContainerStatus(ctx, c.Id, false)
			if err != nil || st.GetStatus().GetLogPath() == "" {
				continue
			}
			rotated, err := crilog.Rotate(st.GetStatus().GetLogPath(), n.LogMaxSize, n.LogMaxFiles, m.now(), func() error {
				return n.Runtime.ReopenContainerLog(ctx, c.Id)
			})
			if err != nil {
				logger.Error(err, "Rotating container log", "container", c.Id)
			} else if rotated {
				logger.V(4).Info("Rotated container log", "container", c.Id, "path", st.GetStatus().GetLogPath())
			}
		}
	}
}
