package proxy

import "slices"

// nodeInfo is what endpoint selection needs to know of this node.
type nodeInfo struct {
	name string
	zone string // topology.kubernetes.io/zone, "" when unlabelled
}

// endpointChoice is where each kind of traffic to a service port goes.
type endpointChoice struct {
	// cluster: every usable endpoint (Cluster traffic policy), topology applied.
	cluster []endpoint
	// local: the usable endpoints on this node (Local traffic policies).
	local []endpoint
	// localReady counts this node's ready endpoints, for the health check node port.
	localReady int
}

// internal is where traffic to the cluster IP goes.
func (c endpointChoice) internal(sp *servicePort) []endpoint {
	if sp.internalLocal {
		return c.local
	}
	return c.cluster
}

// chooseEndpoints applies kube-proxy's rules: ready endpoints are used; when a
// set has none, its endpoints that are serving and terminating are used
// instead, so connections keep working while the last pods shut down
// gracefully. Topology hints narrow the cluster set to this node or zone only
// when the Service asks for it and every ready endpoint carries hints, with at
// least one for us (otherwise traffic would be lost or lopsided).
func chooseEndpoints(sp *servicePort, eps []endpoint, node nodeInfo) endpointChoice {
	pick := func(keep func(endpoint) bool) []endpoint {
		var ready, fallback []endpoint
		for _, e := range eps {
			if !keep(e) {
				continue
			}
			switch {
			case e.ready:
				ready = append(ready, e)
			case e.serving && e.terminating:
				fallback = append(fallback, e)
			}
		}
		if len(ready) > 0 {
			return ready
		}
		return fallback
	}
	var c endpointChoice
	c.cluster = pick(func(endpoint) bool { return true })
	if sp.topologyAware {
		c.cluster = byTopology(c.cluster, node)
	}
	c.local = pick(func(e endpoint) bool { return e.nodeName == node.name })
	for _, e := range eps {
		if e.ready && e.nodeName == node.name {
			c.localReady++
		}
	}
	return c
}

// byTopology keeps the endpoints hinted for this node, else for this zone, else all.
func byTopology(eps []endpoint, node nodeInfo) []endpoint {
	if len(eps) == 0 {
		return eps
	}
	filter := func(hints func(endpoint) []string, want string) []endpoint {
		if want == "" {
			return nil
		}
		var out []endpoint
		for _, e := range eps {
			h := hints(e)
			if len(h) == 0 {
				return nil // an endpoint without hints: hints are not in use
			}
			if slices.Contains(h, want) {
				out = append(out, e)
			}
		}
		return out
	}
	if out := filter(func(e endpoint) []string { return e.nodeHints }, node.name); len(out) > 0 {
		return out
	}
	if out := filter(func(e endpoint) []string { return e.zoneHints }, node.zone); len(out) > 0 {
		return out
	}
	return eps
}
