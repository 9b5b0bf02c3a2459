package localcluster

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubeparts/kubeparts/test/integration/framework"
)

// A copy of kubeparts-apiserver whose /readyz fails is marked not ready in the
// EndpointSlice (the aggregator then routes around it), and ready again once it answers.
func TestKeepAPIServerEndpoints(t *testing.T) {
	client := fake.NewClientset()
	hosts := []net.IP{net.IPv4(100, 64, 0, 2), net.IPv4(100, 64, 0, 6)}
	urls := []string{"https://a/readyz", "https://b/readyz"}
	var mu sync.Mutex
	up := map[string]bool{urls[0]: true, urls[1]: true}
	probe := func(_ context.Context, url string) (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return up[url], ""
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go keepAPIServerEndpoints(ctx, client, hosts, urls, 10251, probe)
	readyFlags := func() string {
		s, err := client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kubeparts-apiserver", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		out := ""
		for _, e := range s.Endpoints {
			out += fmt.Sprintf("%s=%v ", e.Addresses[0], *e.Conditions.Ready)
		}
		return out
	}
	for _, step := range []struct {
		bUp  bool
		want string
	}{
		{false, "100.64.0.2=true 100.64.0.6=false "}, // the failing copy not ready
		{true, "100.64.0.2=true 100.64.0.6=true "},   // ready again
	} {
		mu.Lock()
		up[urls[1]] = step.bUp
		mu.Unlock()
		framework.Eventually(t, 10*time.Second, "EndpointSlice "+step.want, func() error {
			if got := readyFlags(); got != step.want {
				return fmt.Errorf("%s", got)
			}
			return nil
		})
	}
}
