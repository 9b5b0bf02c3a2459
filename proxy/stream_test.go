package proxy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/knftables"
)

// fakeNFT writes a stand-in for the nft binary that runs script (sh) and
// returns its path.
func fakeNFT(t testing.TB, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nft")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStreamedFullSync: a full sync streamed to nft writes exactly the
// transaction knftables would have run, and nft's failures come back as
// errors (never a hang, never a table recorded as applied).
func TestStreamedFullSync(t *testing.T) {
	// A sync compacts what it applied: each run gets a fresh rendering.
	rendered := func() map[string]*serviceRules {
		rules, _ := render(t, nodeInfo{name: "node-a"}, renderContext{clusterCIDRs: "10.244.0.0/16"},
			[]*corev1.Service{
				makeService("ns", "web", "10.96.0.20").port("http", tcp, 80, 30080).obj(),
				makeService("ns", "dns", "10.96.0.10").port("dns", udp, 53, 0).obj(),
			},
			[]*discoveryv1.EndpointSlice{web("10.244.0.7", "10.244.1.5"),
				makeSlice("ns", "dns-1", "dns").port("dns", udp, 53).ep("10.244.0.2", "node-a", "ready").obj()})
		return rules
	}
	viaTx := knftables.NewFake(knftables.IPv4Family, "kubeparts-proxy")
	if err := newTable(viaTx, 14).fullSync(context.Background(), rendered(), []string{"192.168.1.10"}, []string{"10.96.0.0/12"}); err != nil {
		t.Fatal(err)
	}
	want := viaTx.LastTransaction.String()

	out := filepath.Join(t.TempDir(), "stdin")
	for _, tc := range []struct {
		name, script, wantErr string
	}{
		{"applied", `[ "$1 $2" = "-f -" ] || exit 9; cat > ` + out, ""},
		{"nft refuses", `cat >/dev/null; echo "Error: Could not process rule: No such file or directory" >&2; exit 1`, "Could not process rule"},
		{"nft stops reading", `exit 1`, "exit status 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(knftables.NewFake(knftables.IPv4Family, "kubeparts-proxy"), 14)
			tb.nftCommand, tb.name = fakeNFT(t, tc.script), "kubeparts-proxy"
			err := tb.fullSync(context.Background(), rendered(), []string{"192.168.1.10"}, []string{"10.96.0.0/12"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				if len(tb.applied) != 0 {
					t.Errorf("a failed sync recorded %d ports as applied", len(tb.applied))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			// The same operations; elements grouped into few commands,
			// after the chains they refer to.
			if g, w := expandElements(string(got)), sortedLines(want); g != w {
				t.Errorf("streamed transaction differs from knftables':\n%s", diffLines(w, g))
			}
			// Every chain an element jumps to exists before it.
			added := map[string]bool{}
			for _, l := range strings.Split(string(got), "\n") {
				if name, ok := strings.CutPrefix(l, "add chain ip kubeparts-proxy "); ok {
					added[strings.Fields(name)[0]] = true
				}
				if !strings.HasPrefix(l, "add element") {
					continue
				}
				for _, part := range strings.Split(l, "goto ")[1:] {
					if chain := strings.Trim(strings.Fields(part)[0], ","); !added[chain] {
						t.Errorf("element refers to chain %s before it is added: %s", chain, l)
					}
				}
			}
			if len(tb.applied) != 2 {
				t.Errorf("applied %d ports, want 2", len(tb.applied))
			}
		})
	}
}

// expandElements splits grouped element commands into one per element and
// sorts the lines.
func expandElements(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		head, body, ok := strings.Cut(l, " { ")
		if !ok || !strings.HasPrefix(l, "add element") {
			out = append(out, l)
			continue
		}
		for _, e := range strings.Split(strings.TrimSuffix(body, " }"), ", ") {
			out = append(out, head+" { "+e+" }")
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

func sortedLines(text string) string {
	lines := strings.Split(text, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
