package runtime

import (
	"context"
	"fmt"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
)

// Remote connects to a CRI runtime (containerd) over its gRPC socket with the
// upstream CRI client, the same one the kubelet uses.
func Remote(ctx context.Context, endpoint string) (internalapi.RuntimeService, internalapi.ImageManagerService, error) {
	rt, err := remote.NewRemoteRuntimeService(ctx, endpoint, 2*time.Minute, nil, false)
	if err != nil {
		return nil, nil, fmt.Errorf("CRI runtime at %s: %w", endpoint, err)
	}
	img, err := remote.NewRemoteImageService(ctx, endpoint, 2*time.Minute, nil, false)
	if err != nil {
		return nil, nil, fmt.Errorf("CRI image service at %s: %w", endpoint, err)
	}
	return rt, img, nil
}
