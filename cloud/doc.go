// Package cloud is kubeparts' cloud provider, "kubeparts", for
// k8s.io/cloud-provider's cloud-controller-manager: the machine that
// `kubeparts up` manages is the cloud.
//
//   - Instances are the cluster's hosts (node 0 on the machine itself, each
//     worker in a network namespace of its own), read from the inventory
//     file that `kubeparts up` keeps (inventory.go): provider ID
//     kubeparts://<cluster>/<node>, addresses, instance type, region and
//     zone (instances.go).
//
//   - Load balancers get an address from a pool (--load-balancer-cidr) on a
//     dummy interface of the machine, and forward its ports to the Service's
//     node ports on the nodes that should get the traffic, through an
//     nftables table of their own (loadbalancer.go, dataplane.go); with
//     externalTrafficPolicy Local only to nodes whose health check node port
//     answers (health.go).
//
//   - Routes send each node's pod range (spec.podCIDR, from the node IPAM of
//     kube-controller-manager) to the node's host: a kernel route of the
//     machine via the worker's address, tagged with its own protocol number
//     (routes.go).
package cloud
