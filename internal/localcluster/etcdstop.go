package localcluster

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
)

// stopWaves orders a component's copies for Stop: together, except etcd's
// members, whose leader stops last. A leader told to stop first hands its
// leadership to a peer; with every peer stopping at the same moment that
// handoff waits out etcd's request timeout (about 7 s here) before giving up,
// whereas a leader whose peers are already gone skips it.
func stopWaves(copies []*process) [][]*process {
	if len(copies) < 2 || copies[0].component != etcdComponent.name {
		return [][]*process{copies}
	}
	leader := make([]bool, len(copies))
	var wg sync.WaitGroup
	for i, p := range copies {
		wg.Add(1)
		go func() { defer wg.Done(); leader[i] = etcdIsLeader(p.health) }()
	}
	wg.Wait()
	var followers, leaders []*process
	for i, p := range copies {
		if leader[i] {
			leaders = append(leaders, p)
		} else {
			followers = append(followers, p)
		}
	}
	if len(leaders) == 0 || len(followers) == 0 {
		return [][]*process{copies}
	}
	return [][]*process{followers, leaders}
}

// etcdIsLeader reads a member's etcd_server_is_leader gauge from its metrics
// listener, beside the /health URL `up` checks; false when it cannot tell.
func etcdIsLeader(healthURL string) bool {
	metrics, ok := strings.CutSuffix(healthURL, "/health")
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metrics+"/metrics", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	return isLeaderIn(bufio.NewScanner(resp.Body))
}

// isLeaderIn finds "etcd_server_is_leader 1" in a Prometheus text exposition.
func isLeaderIn(lines *bufio.Scanner) bool {
	for lines.Scan() {
		if v, ok := strings.CutPrefix(lines.Text(), "etcd_server_is_leader "); ok {
			return strings.TrimSpace(v) == "1"
		}
	}
	return false
}
