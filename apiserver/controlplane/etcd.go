package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cp "github.com/kubeparts/kubeparts/api/controlplane/v1alpha1"
)

// etcdView reads etcd's members and their status. The client is made per
// request: reads are rare (a kubectl get), and a long-lived client would keep
// connections to members that may be gone.
type etcdView struct {
	servers []string
	tls     *tls.Config
	timeout time.Duration
}

func newEtcdView(o *Options) (*etcdView, error) {
	e := &etcdView{servers: o.EtcdServers, timeout: o.ProbeTimeout}
	if o.EtcdCAFile != "" || o.EtcdCertFile != "" {
		info := transport.TLSInfo{TrustedCAFile: o.EtcdCAFile, CertFile: o.EtcdCertFile, KeyFile: o.EtcdKey}
		cfg, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
		e.tls = cfg
	}
	return e, nil
}

// members lists the members with each one's status; an unreachable member is
// reported Unhealthy, an unreachable cluster is an error.
func (e *etcdView) members(ctx context.Context) ([]cp.EtcdMember, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout+2*time.Second)
	defer cancel()
	client, err := clientv3.New(clientv3.Config{Endpoints: e.servers, TLS: e.tls, DialTimeout: e.timeout, Context: ctx})
	if err != nil {
		return nil, err
	}
	defer client.Close()
	// Serializable: any live member answers from its own state, so the list is there
	// (and says which members are gone) when quorum is not.
	list, err := client.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return nil, fmt.Errorf("etcd member list: no member answered (%v)", err)
	}
	voters := 0
	for _, m := range list.Members {
		if !m.IsLearner {
			voters++
		}
	}
	quorum := voters/2 + 1
	out := make([]cp.EtcdMember, len(list.Members))
	var wg sync.WaitGroup
	for i, m := range list.Members {
		name := m.Name
		if name == "" { // not started yet: etcd has no name for it
			name = fmt.Sprintf("%x", m.ID)
		}
		out[i] = cp.EtcdMember{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: cp.EtcdMemberStatus{
			ID: fmt.Sprintf("%x", m.ID), PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner,
			Voters: voters, QuorumSize: quorum, FailureTolerance: voters - quorum,
			Health: cp.Unhealthy, Message: "no client URL",
		}}
		if len(m.ClientURLs) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := client.Status(ctx, m.ClientURLs[0])
			s := &out[i].Status
			if err != nil {
				s.Message = err.Error()
				return
			}
			s.Health, s.Message = cp.Healthy, ""
			s.Leader = st.Leader == m.ID
			s.Version, s.RaftTerm, s.RaftIndex = st.Version, st.RaftTerm, st.RaftIndex
			s.DBSize, s.DBSizeInUse = st.DbSize, st.DbSizeInUse
		}()
	}
	wg.Wait()
	markLostQuorum(out)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// markLostQuorum says on every member when the voting members that answer are fewer
// than a quorum, or none leads: the cluster then takes no writes (and no linearizable
// reads) until enough members are back. A member that answers without a leader is not
// healthy, as etcd's own /health says.
func markLostQuorum(members []cp.EtcdMember) {
	answering, leader := 0, false
	for _, m := range members {
		if m.Status.Health == cp.Healthy && !m.Status.Learner {
			answering++
		}
		leader = leader || m.Status.Leader
	}
	if len(members) == 0 || (answering >= members[0].Status.QuorumSize && leader) {
		return
	}
	lost := fmt.Sprintf("quorum lost: %d of %d voting members answer, %d needed; writes fail until members return", answering, members[0].Status.Voters, members[0].Status.QuorumSize)
	if answering >= members[0].Status.QuorumSize {
		lost = "no leader elected yet; writes wait for one"
	}
	for i := range members {
		s := &members[i].Status
		if s.Health == cp.Healthy {
			s.Health, s.Message = cp.Unhealthy, lost
		} else {
			s.Message = lost + " (this member: " + s.Message + ")"
		}
	}
}

// etcdComponent summarizes the members as the etcd Component: healthy while
// a quorum of voters answers.
func (v *View) etcdComponent(ctx context.Context) cp.Component {
	c := cp.Component{ObjectMeta: metav1.ObjectMeta{Name: "etcd"}, Status: cp.ComponentStatus{
		Role: cp.RoleEtcd, Implementation: cp.ImplementationStock, Binary: "etcd",
	}}
	members, err := v.etcd.members(ctx)
	if err != nil {
		c.Status.Health, c.Status.Message = cp.Unhealthy, err.Error()
		return c
	}
	healthyVoters, quorum, lost := 0, 0, ""
	for _, m := range members {
		if strings.HasPrefix(m.Status.Message, "quorum lost") || strings.HasPrefix(m.Status.Message, "no leader") {
			lost, _, _ = strings.Cut(m.Status.Message, " (this member")
		}
		quorum = m.Status.QuorumSize
		if m.Status.Health == cp.Healthy && !m.Status.Learner {
			healthyVoters++
		}
		if m.Status.Leader {
			c.Status.Leader = m.Name
		}
		if c.Status.Version == "" {
			c.Status.Version = m.Status.Version
		}
		c.Status.Instances = append(c.Status.Instances, cp.ComponentInstance{Name: m.Name, Endpoint: first(m.Status.ClientURLs),
			Health: m.Status.Health, Message: m.Status.Message, Version: m.Status.Version})
	}
	c.Status.Health = cp.Healthy
	c.Status.Message = fmt.Sprintf("%d of %d voting members healthy, quorum %d", healthyVoters, len(members), quorum)
	if healthyVoters < quorum || lost != "" {
		c.Status.Health = cp.Unhealthy
	}
	if lost != "" {
		c.Status.Message = lost
	}
	return c
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
