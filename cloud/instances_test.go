package cloud

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cloudprovider "k8s.io/cloud-provider"
)

func TestInstances(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "inventory.json")
	inv := &Inventory{Cluster: "c1", Region: "local", Hosts: []Host{
		{Name: "n0", InternalIP: "192.168.1.10", Zone: "a", InstanceType: "kubeparts-machine"},
		{Name: "n1", InternalIP: "100.64.0.2", Zone: "b", InstanceType: "kubeparts-netns", NetNS: "kubeparts-test-no-such-netns"},
		{Name: "n2", InternalIP: "100.64.0.6", Zone: "a", InstanceType: "kubeparts-machine", Stopped: true},
	}}
	if err := WriteInventory(path, inv); err != nil {
		t.Fatal(err)
	}
	in := &instances{inventory: func() (*Inventory, error) { return ReadInventory(path) }}
	ctx := context.Background()
	nodeWith := func(name, providerID string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{ProviderID: providerID}}
	}
	for _, tc := range []struct {
		name             string
		node             *corev1.Node
		exists, shutdown bool
	}{
		{"by name", nodeWith("n0", ""), true, false},
		{"by provider ID", nodeWith("renamed", "kubeparts://c1/n0"), true, false},
		{"netns gone: shut down", nodeWith("n1", ""), true, true},
		{"marked stopped", nodeWith("n2", ""), true, true},
		{"not in the inventory", nodeWith("gone", ""), false, false},
		{"another cluster's provider ID", nodeWith("n0", "kubeparts://c2/n0"), false, false},
		{"another provider's ID", nodeWith("n0", "aws:///us-east-1a/i-0123"), false, false},
	} {
		exists, err := in.InstanceExists(ctx, tc.node)
		if err != nil || exists != tc.exists {
			t.Errorf("%s: exists %v, %v; want %v", tc.name, exists, err, tc.exists)
		}
		shutdown, err := in.InstanceShutdown(ctx, tc.node)
		if err != nil || shutdown != tc.shutdown {
			t.Errorf("%s: shutdown %v, %v; want %v", tc.name, shutdown, err, tc.shutdown)
		}
	}
	md, err := in.InstanceMetadata(ctx, nodeWith("n1", ""))
	if err != nil {
		t.Fatal(err)
	}
	if md.ProviderID != "kubeparts://c1/n1" || md.Zone != "b" || md.Region != "local" || md.InstanceType != "kubeparts-netns" ||
		len(md.NodeAddresses) != 2 || md.NodeAddresses[0] != (corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "100.64.0.2"}) {
		t.Errorf("metadata %+v", md)
	}
	if _, err := in.InstanceMetadata(ctx, nodeWith("gone", "")); !errors.Is(err, cloudprovider.InstanceNotFound) {
		t.Errorf("metadata of an unknown node: %v, want InstanceNotFound", err)
	}
}

func TestFromManager(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "inventory: /x/inventory.json\nloadBalancerCIDR: 172.31.0.0/24\n")
	for _, tc := range []struct {
		name, provider, config, clusterCIDR string
		flags                               Flags
		wantErr                             string
	}{
		{name: "ok", provider: "kubeparts", config: good, clusterCIDR: "10.200.0.0/16"},
		{name: "unknown provider", provider: "aws", config: good, wantErr: `--cloud-provider="aws": kubeparts-cloud-controller-manager has one provider, "kubeparts"`},
		{name: "no config", provider: "kubeparts", wantErr: "--cloud-config is required"},
		{name: "unknown key", provider: "kubeparts", config: write("typo.yaml", "inventry: /x\n"), wantErr: `unknown field "inventry"`},
		{name: "no inventory", provider: "kubeparts", config: write("empty.yaml", "loadBalancerCIDR: 172.31.0.0/24\n"), wantErr: "inventory: required"},
		{name: "bad pool flag", provider: "kubeparts", config: good, flags: Flags{LoadBalancerCIDR: "172.31.0.1/24"}, wantErr: `--load-balancer-cidr "172.31.0.1/24": not a network address`},
		{name: "long interface", provider: "kubeparts", config: good, flags: Flags{LoadBalancerInterface: "a-very-long-interface"}, wantErr: "at most 15 characters"},
		{name: "bad cluster CIDR", provider: "kubeparts", config: good, clusterCIDR: "10.200.0.0", wantErr: "--cluster-cidr"},
	} {
		p, err := FromManager(tc.provider, tc.config, tc.clusterCIDR, tc.flags)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if _, ok := p.LoadBalancer(); !ok {
			t.Errorf("%s: no load balancers with a pool", tc.name)
		}
	}
}
