// Package runtime provides the CRI runtimes the node agent can use.
package runtime

import (
	"context"
	"fmt"
	"sync/atomic"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

// Simulated is an in-process CRI runtime: sandboxes and containers "run" the
// moment they are started, any image is present once pulled. It wraps the CRI
// fake from k8s.io/cri-api, giving each sandbox its own IP from the node's pod
// CIDR and reporting the runtime and network ready.
type Simulated struct {
	*critest.FakeRuntimeService
	Images *critest.FakeImageService

	prefix string // first three octets of the node's /24
	next   atomic.Uint32
}

var (
	_ internalapi.RuntimeService      = &Simulated{}
	_ internalapi.ImageManagerService = &critest.FakeImageService{}
)

// NewSimulated returns a runtime handing out pod IPs from prefix.0/24 (e.g. "10.244.3").
func NewSimulated(prefix string) *Simulated {
	s := &Simulated{FakeRuntimeService: critest.NewFakeRuntimeService(), Images: critest.NewFakeImageService(), prefix: prefix}
	ready := true
	s.FakeStatus = &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: ready},
		{Type: runtimeapi.NetworkReady, Status: ready},
	}}
	return s
}

// RunPodSandbox starts a sandbox with its own IP. The fake records every call
// for test assertions; a long-running simulation has no use for that log, so
// it is dropped here to keep memory flat.
func (s *Simulated) RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	id, err := s.FakeRuntimeService.RunPodSandbox(ctx, config, handler)
	if err != nil {
		return "", err
	}
	ip := fmt.Sprintf("%s.%d", s.prefix, 2+s.next.Add(1)%250)
	s.Lock()
	if sb := s.Sandboxes[id]; sb != nil {
		sb.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: ip}
	}
	s.Called = s.Called[:0]
	s.Unlock()
	s.Images.Lock()
	s.Images.Called = s.Images.Called[:0]
	s.Images.Unlock()
	return id, nil
}
