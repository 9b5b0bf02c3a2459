// Package proxy is the kube-proxy role of kubeparts: it watches Services,
// EndpointSlices and its own Node, and programs them into an nftables table
// of its own (sigs.k8s.io/knftables), with kube-proxy's semantics.
//
// The work is split as data flows:
//
//   - model.go turns API objects into service ports and endpoints, skipping
//     (and reporting) what cannot be served;
//   - endpoints.go picks, per service port, the endpoints each kind of traffic
//     goes to (ready, serving-terminating fallback, traffic policies, topology);
//   - rules.go renders one service port into chains, map elements and sets: a
//     pure function, golden-tested;
//   - table.go owns the table: the fixed skeleton, and the transactions of a
//     full sync (everything, repairing what others changed) and of a partial
//     sync (only what changed since the last sync);
//   - proxier.go runs the loop: informers, rate-limited syncs, conntrack
//     cleanup, health, metrics and Events.
package proxy
