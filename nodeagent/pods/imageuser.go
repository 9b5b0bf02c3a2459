package pods

import (
	"context"
	"fmt"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// imageUser is the user an image runs as: a uid when numeric, else a name;
// an image that names none runs as root (uid 0), as the kubelet assumes.
func imageUser(ctx context.Context, images internalapi.ImageManagerService, image string) (*int64, string, error) {
	st, err := images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: image}, false)
	if err != nil {
		return nil, "", fmt.Errorf("image status %s: %w", image, err)
	}
	if img := st.GetImage(); img != nil {
		if img.Uid != nil {
			return &img.Uid.Value, "", nil
		}
		if img.Username != "" {
			return nil, img.Username, nil
		}
	}
	return new(int64), "", nil
}
