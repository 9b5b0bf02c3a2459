package proxy

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/knftables"
)

type clusterState struct {
	svcs   []*corev1.Service
	slices []*discoveryv1.EndpointSlice
}

func web(eps ...string) *discoveryv1.EndpointSlice {
	b := makeSlice("ns", "web-1", "web").port("http", tcp, 8080)
	for _, ip := range eps {
		b.ep(ip, "node-a", "ready")
	}
	return b.obj()
}

// TestPartialSyncEqualsFullSync: whatever changes between two states, the
// partial sync must leave the kernel exactly as a full sync of the new state
// would (same chains, rules, elements, sets), and touch less.
func TestPartialSyncEqualsFullSync(t *testing.T) {
	rc := renderContext{clusterCIDRs: "10.244.0.0/16"}
	base := clusterState{
		svcs: []*corev1.Service{
			makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 0).obj(),
			makeService("ns", "dns", "10.96.0.10").port("dns", udp, 53, 0).obj(),
		},
		slices: []*discoveryv1.EndpointSlice{web("10.244.0.7", "10.244.1.5"),
			makeSlice("ns", "dns-1", "dns").port("dns", udp, 53).ep("10.244.0.2", "node-a", "ready").obj()},
	}
	dnsSlice := base.slices[1]
	cases := []struct {
		name string
		next clusterState
	}{
		{"endpoint added", clusterState{base.svcs, []*discoveryv1.EndpointSlice{web("10.244.0.7", "10.244.1.5", "10.244.2.8"), dnsSlice}}},
		{"endpoint removed", clusterState{base.svcs, []*discoveryv1.EndpointSlice{web("10.244.1.5"), dnsSlice}}},
		{"all endpoints gone", clusterState{base.svcs, []*discoveryv1.EndpointSlice{dnsSlice}}},
		{"service deleted", clusterState{base.svcs[1:], []*discoveryv1.EndpointSlice{dnsSlice}}},
		{"became NodePort with affinity", clusterState{[]*corev1.Service{
			makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 30080).typ(corev1.ServiceTypeNodePort).affinity(30).obj(), base.svcs[1]}, base.slices}},
		{"service added", clusterState{append([]*corev1.Service{makeService("ns", "new", "10.96.0.50").port("", tcp, 443, 0).obj()}, base.svcs...),
			append([]*discoveryv1.EndpointSlice{makeSlice("ns", "new-1", "new").port("", tcp, 8443).ep("10.244.3.3", "node-x", "ready").obj()}, base.slices...)}},
		{"became Local with no local endpoint", clusterState{[]*corev1.Service{
			makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 30080).typ(corev1.ServiceTypeNodePort).externalLocal(31000).obj(), base.svcs[1]},
			[]*discoveryv1.EndpointSlice{makeSlice("ns", "web-1", "web").port("http", tcp, 8080).ep("10.244.1.5", "node-b", "ready").obj(), dnsSlice}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := render(t, me, rc, base.svcs, base.slices)
			after, _ := render(t, me, rc, tc.next.svcs, tc.next.slices)
			_, fake, tb := fullDump(t, before, []string{"192.168.1.10"})
			changed := map[string]*serviceRules{}
			for k := range before {
				changed[k] = nil
			}
			maps.Copy(changed, after)
			n, err := tb.partialSync(context.Background(), changed)
			if err != nil {
				t.Fatalf("partial sync: %v", err)
			}
			// Rendered anew: a sync keeps only digests of what it wrote.
			fresh, _ := render(t, me, rc, tc.next.svcs, tc.next.slices)
			want, _, _ := fullDump(t, fresh, []string{"192.168.1.10"})
			if got := sortedElements(fake.Dump()); got != sortedElements(want) {
				t.Errorf("partial sync differs from a full sync of the new state:\n%s", diffLines(want, got))
			}
			if n == 0 {
				t.Errorf("partial sync wrote nothing for a change")
			}
		})
	}
}

// TestPartialSyncWritesOnlyChanges: a sync with nothing changed writes
// nothing, and an endpoint change rewrites that Service's chains only.
func TestPartialSyncWritesOnlyChanges(t *testing.T) {
	rc := renderContext{}
	svcs := []*corev1.Service{makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 0).obj()}
	for i := 0; i < 50; i++ {
		svcs = append(svcs, makeService("ns", "other"+string(rune('a'+i%26))+string(rune('a'+i/26)), "10.96.1."+itoa(i+1)).port("", tcp, 80, 0).obj())
	}
	rules, _ := render(t, me, rc, svcs, []*discoveryv1.EndpointSlice{web("10.244.0.7")})
	_, _, tb := fullDump(t, rules, nil)
	same, _ := render(t, me, rc, svcs, []*discoveryv1.EndpointSlice{web("10.244.0.7")})
	if n, err := tb.partialSync(context.Background(), same); err != nil || n != 0 {
		t.Fatalf("unchanged state: %d operations, err %v; want 0", n, err)
	}
	next, _ := render(t, me, rc, svcs[:1], []*discoveryv1.EndpointSlice{web("10.244.0.7", "10.244.0.8")})
	n, err := tb.partialSync(context.Background(), next)
	if err != nil {
		t.Fatal(err)
	}
	// new endpoint chain (add+flush+3 rules), service chain (flush+2 rules).
	if n > 10 {
		t.Errorf("one endpoint added cost %d operations; only the Service's own chains should be written", n)
	}
}

// sortedElements orders the element lines of a dump: the order elements
// were added in does not matter to nftables (rule order does, and stays).
func sortedElements(dump string) string {
	var other, elems []string
	for _, l := range strings.Split(dump, "\n") {
		if strings.HasPrefix(l, "add element ") {
			elems = append(elems, l)
		} else {
			other = append(other, l)
		}
	}
	slices.Sort(elems)
	return strings.Join(append(other, elems...), "\n")
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// TestFullSyncRepairsAndRemovesStale: a restarted proxy (nothing known) finds
// the rules of Services deleted while it was down and rules changed behind
// its back; its first full sync removes the first and repairs the second.
func TestFullSyncRepairsAndRemovesStale(t *testing.T) {
	rc := renderContext{}
	old, _ := render(t, me, rc, []*corev1.Service{
		makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 0).obj(),
		makeService("ns", "gone", "10.96.0.30").port("", tcp, 80, 0).affinity(60).obj(),
	}, []*discoveryv1.EndpointSlice{web("10.244.0.7"), makeSlice("ns", "gone-1", "gone").port("", tcp, 80).ep("10.244.0.9", "node-a", "ready").obj()})
	_, fake, _ := fullDump(t, old, nil)
	// Someone else edits our dispatch chain.
	tx := fake.NewTransaction()
	tx.Flush(&knftables.Chain{Name: "services"})
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	now, _ := render(t, me, rc, []*corev1.Service{makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 0).obj()},
		[]*discoveryv1.EndpointSlice{web("10.244.0.7")})
	restarted := newTable(fake, 14)
	if err := restarted.fullSync(context.Background(), now, nil, []string{"10.96.0.0/12"}); err != nil {
		t.Fatal(err)
	}
	fresh, _ := render(t, me, rc, []*corev1.Service{makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 0).obj()},
		[]*discoveryv1.EndpointSlice{web("10.244.0.7")})
	want, _, _ := fullDump(t, fresh, nil)
	if got := fake.Dump(); got != want {
		t.Errorf("after restart the table differs from a fresh one:\n%s", diffLines(want, got))
	}
}

// TestPartialSyncKeepsNonRuleChanges: a change that alters no rule (the only
// local endpoint starts terminating: it still serves, as the fallback) must
// still replace what the proxier knows, or the health check node port keeps
// answering 200 for an endpoint that is going away.
func TestPartialSyncKeepsNonRuleChanges(t *testing.T) {
	svc := makeService("ns", "lb", "10.96.0.40").port("", tcp, 80, 30080).lb().externalLocal(31000).obj()
	ready, _ := render(t, me, renderContext{}, []*corev1.Service{svc},
		[]*discoveryv1.EndpointSlice{makeSlice("ns", "lb-1", "lb").port("", tcp, 80).ep("10.244.0.7", "node-a", "ready").obj()})
	_, _, tb := fullDump(t, ready, nil)
	terminating, _ := render(t, me, renderContext{}, []*corev1.Service{svc},
		[]*discoveryv1.EndpointSlice{makeSlice("ns", "lb-1", "lb").port("", tcp, 80).ep("10.244.0.7", "node-a", "terminating").obj()})
	n, err := tb.partialSync(context.Background(), terminating)
	if err != nil || n != 0 {
		t.Fatalf("%d operations, err %v; the rules are the same", n, err)
	}
	if got := tb.applied["ns/lb/tcp/"].localReady; got != 0 {
		t.Errorf("ready local endpoints after the change: %d, want 0", got)
	}
}

// TestSharedSetElements: two Services on the same pod port share its
// hairpin element; when one goes, the element stays for the other, and it
// leaves with the last.
func TestSharedSetElements(t *testing.T) {
	rc := renderContext{}
	a := makeService("ns", "a", "10.96.0.50").port("", tcp, 80, 0).obj()
	b := makeService("ns", "b", "10.96.0.51").port("", tcp, 80, 0).obj()
	slice := func(svc string) *discoveryv1.EndpointSlice {
		return makeSlice("ns", svc+"-1", svc).port("", tcp, 8080).ep("10.244.0.7", "node-a", "ready").obj()
	}
	both, _ := render(t, me, rc, []*corev1.Service{a, b}, []*discoveryv1.EndpointSlice{slice("a"), slice("b")})
	_, fake, tb := fullDump(t, both, nil)
	const hairpin = "hairpin-connections { 10.244.0.7 . 10.244.0.7 . tcp . 8080 }"
	onlyB, _ := render(t, me, rc, []*corev1.Service{b}, []*discoveryv1.EndpointSlice{slice("b")})
	if _, err := tb.partialSync(context.Background(), map[string]*serviceRules{"ns/a/tcp/": nil, "ns/b/tcp/": onlyB["ns/b/tcp/"]}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fake.Dump(), hairpin) {
		t.Errorf("the hairpin element left with the first of its two Services")
	}
	if _, err := tb.partialSync(context.Background(), map[string]*serviceRules{"ns/b/tcp/": nil}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fake.Dump(), "10.244.0.7 . 10.244.0.7") {
		t.Errorf("the hairpin element outlived both Services")
	}
}
