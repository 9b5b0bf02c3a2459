package probes

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// hookHTTP is shared by every lifecycle hook's HTTP GET.
var hookHTTP = newHTTPProber()

// HTTPGetHook sends a postStart or preStop httpGet handler's request, built
// as for a probe (named ports, host default the pod IP, headers); like the
// kubelet, it fails on a transport error or an error status.
func HTTPGetHook(ctx context.Context, a *corev1.HTTPGetAction, c *corev1.Container, podIP string) error {
	req, err := newHTTPRequest(ctx, a, c, podIP)
	if err != nil {
		return err
	}
	timeout := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	result, msg, err := hookHTTP.probe(req, timeout)
	if err != nil {
		return err
	}
	if result == failure {
		return fmt.Errorf("http GET %s: %s", req.URL, msg)
	}
	return nil
}
