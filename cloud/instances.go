package cloud

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"
)

// ProviderID is the spec.providerID of a node of cluster.
func ProviderID(cluster, node string) string {
	return fmt.Sprintf("%s://%s/%s", ProviderName, cluster, node)
}

// parseProviderID splits kubeparts://<cluster>/<node>.
func parseProviderID(id string) (cluster, node string, err error) {
	rest, ok := strings.CutPrefix(id, ProviderName+"://")
	if ok {
		cluster, node, ok = strings.Cut(rest, "/")
	}
	if !ok || cluster == "" || node == "" || strings.Contains(node, "/") {
		return "", "", fmt.Errorf("provider ID %q is not of the form %s://<cluster>/<node>", id, ProviderName)
	}
	return cluster, node, nil
}

// instances answers for the inventory's hosts (cloudprovider.InstancesV2).
type instances struct {
	inventory func() (*Inventory, error)
}

// find is the host of node: by provider ID when it has one (a node of
// another cluster, or of another provider, has no host here), else by name.
func (in *instances) find(node *corev1.Node) (*Inventory, *Host, error) {
	inv, err := in.inventory()
	if err != nil {
		return nil, nil, err
	}
	name := node.Name
	if node.Spec.ProviderID != "" {
		cluster, n, err := parseProviderID(node.Spec.ProviderID)
		if err != nil || cluster != inv.Cluster {
			return inv, nil, nil
		}
		name = n
	}
	h, _ := inv.host(name)
	return inv, h, nil
}

func (in *instances) InstanceExists(_ context.Context, node *corev1.Node) (bool, error) {
	_, h, err := in.find(node)
	return h != nil, err
}

func (in *instances) InstanceShutdown(_ context.Context, node *corev1.Node) (bool, error) {
	_, h, err := in.find(node)
	if err != nil || h == nil {
		return false, err
	}
	return !h.running(), nil
}

func (in *instances) InstanceMetadata(_ context.Context, node *corev1.Node) (*cloudprovider.InstanceMetadata, error) {
	inv, h, err := in.find(node)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, cloudprovider.InstanceNotFound
	}
	return &cloudprovider.InstanceMetadata{
		ProviderID:   ProviderID(inv.Cluster, h.Name),
		InstanceType: h.InstanceType,
		NodeAddresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: h.InternalIP},
			{Type: corev1.NodeHostName, Address: h.Name},
		},
		Zone:   h.Zone,
		Region: inv.Region,
	}, nil
}
