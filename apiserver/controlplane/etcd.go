package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"sort"
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
	list, err := client.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcd member list: %w", err)
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
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
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
	healthyVoters, quorum := 0, 0
	for _, m := range members {
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
	if healthyVoters < quorum {
		c.Status.Health = cp.Unhealthy
	}
	return c
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
