package controlplane

import (
	"strings"
	"testing"

	cp "github.com/kubeparts/kubeparts/api/controlplane/v1alpha1"
)

func TestParseEndpointInstance(t *testing.T) {
	for _, tc := range []struct{ flag, binary, instance, err string }{
		{"scheduler=kube-scheduler@https://127.0.0.1:10259/healthz", "kube-scheduler", "127.0.0.1", ""},
		{"scheduler=kube-scheduler/host-cp2@https://10.0.0.2:10259/healthz", "kube-scheduler", "host-cp2", ""},
		{"scheduler=kube-scheduler/@https://10.0.0.2:10259/healthz", "", "", "want role=binary"},
		{"scheduler=@https://10.0.0.2:10259/healthz", "", "", "want role=binary"},
		{"api-extension=kubeparts-apiserver/host-cp3@https://10.0.0.3:7443/readyz", "kubeparts-apiserver", "host-cp3", ""},
		{"extension=kubeparts-apiserver@https://10.0.0.3:7443/readyz", "", "", "unknown role"},
	} {
		ep, err := parseEndpoint(tc.flag)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.flag, err, tc.err)
			}
			continue
		}
		if err != nil || ep.binary != tc.binary || ep.instance != tc.instance {
			t.Errorf("%s: %+v %v, want binary %s instance %s", tc.flag, ep, err, tc.binary, tc.instance)
		}
	}
}

func TestInstancesHealth(t *testing.T) {
	healthy := func(name string, leader bool) cp.ComponentInstance {
		return cp.ComponentInstance{Name: name, Health: cp.Healthy, Leader: leader}
	}
	down := func(name string, leader bool) cp.ComponentInstance {
		return cp.ComponentInstance{Name: name, Health: cp.Unhealthy, Message: "refused", Leader: leader}
	}
	for _, tc := range []struct {
		name   string
		in     []cp.ComponentInstance
		health string
		msg    string
	}{
		{"one copy, its health", []cp.ComponentInstance{down("a", false)}, cp.Unhealthy, "refused"},
		{"all healthy", []cp.ComponentInstance{healthy("a", true), healthy("b", false)}, cp.Healthy, ""},
		{"a follower down", []cp.ComponentInstance{healthy("a", true), down("b", false), healthy("c", false)}, cp.Healthy, "1 of 3 copies not healthy (b: refused)"},
		{"the leader's copy down", []cp.ComponentInstance{down("a", true), healthy("b", false)}, cp.Unhealthy, "1 of 2 copies not healthy (a: refused)"},
		{"no leader known, one copy up", []cp.ComponentInstance{down("a", false), healthy("b", false)}, cp.Healthy, "1 of 2 copies not healthy"},
		{"every copy down", []cp.ComponentInstance{down("a", false), down("b", false)}, cp.Unhealthy, "2 of 2 copies"},
	} {
		health, msg := instancesHealth(tc.in)
		if health != tc.health || !strings.Contains(msg, tc.msg) || (tc.msg == "" && msg != "") {
			t.Errorf("%s: %s %q, want %s %q", tc.name, health, msg, tc.health, tc.msg)
		}
	}
}

func TestMarkLostQuorum(t *testing.T) {
	member := func(name string, healthy, leader bool) cp.EtcdMember {
		m := cp.EtcdMember{Status: cp.EtcdMemberStatus{Voters: 3, QuorumSize: 2, FailureTolerance: 1, Health: cp.Unhealthy, Message: "context deadline exceeded", Leader: leader}}
		m.Name = name
		if healthy {
			m.Status.Health, m.Status.Message = cp.Healthy, ""
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		members []cp.EtcdMember
		want    []string // each member's message prefix; "" for untouched
	}{
		{"all up", []cp.EtcdMember{member("a", true, true), member("b", true, false), member("c", true, false)}, []string{"", "", ""}},
		{"one down, quorum kept", []cp.EtcdMember{member("a", true, true), member("b", true, false), member("c", false, false)}, []string{"", "", "context deadline"}},
		{"two down", []cp.EtcdMember{member("a", true, false), member("b", false, false), member("c", false, false)},
			[]string{"quorum lost: 1 of 3 voting members answer, 2 needed", "quorum lost", "quorum lost"}},
		{"quorum but no leader yet", []cp.EtcdMember{member("a", true, false), member("b", true, false), member("c", false, false)},
			[]string{"no leader elected yet", "no leader", "no leader"}},
	} {
		markLostQuorum(tc.members)
		for i, m := range tc.members {
			if !strings.HasPrefix(m.Status.Message, tc.want[i]) || (tc.want[i] == "" && m.Status.Message != "") {
				t.Errorf("%s: member %s message %q, want prefix %q", tc.name, m.Name, m.Status.Message, tc.want[i])
			}
			if strings.HasPrefix(tc.want[i], "quorum lost") || strings.HasPrefix(tc.want[i], "no leader") {
				if m.Status.Health != cp.Unhealthy {
					t.Errorf("%s: member %s %s without a quorum", tc.name, m.Name, m.Status.Health)
				}
			}
		}
	}
}
