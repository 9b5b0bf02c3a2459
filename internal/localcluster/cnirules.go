package localcluster

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// The bridge CNI plugin masquerades a pod's traffic (ipMasq, a lone node's
// setting) with a rule in nat POSTROUTING per pod, `-s <pod IP>/32 -m comment
// --comment "name: \"kubeparts\" id: \"<sandbox>\"" -j CNI-<hash>`, and
// removes it when the sandbox's network is torn down. A sandbox that never
// is (an `up` or node killed outright) leaves it behind, and a later cluster
// whose pods get the same addresses (pod CIDRs are /16s from 50, picked by
// the data dir's hash) has their traffic NATed where it must not be: a
// multi-node cluster's pods would see each other as node addresses. No pod of
// this cluster is running when up starts or after its pods were removed at
// stop, and two clusters sharing a pod CIDR could not both route it, so every
// such rule inside this cluster's pod CIDR is stale then.

// staleMasquerade picks, from `iptables -t nat -S POSTROUTING`, the bridge
// plugin's rules for sources inside cidr: each rule's arguments (for -D) and
// the chain it jumps to.
func staleMasquerade(rules string, cidr *net.IPNet) (specs [][]string, chains []string) {
	for line := range strings.Lines(rules) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "-A POSTROUTING ") || !strings.Contains(line, `name: \"kubeparts\"`) {
			continue
		}
		args := splitRule(strings.TrimPrefix(line, "-A POSTROUTING "))
		var src, chain string
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "-s":
				src = args[i+1]
			case "-j":
				chain = args[i+1]
			}
		}
		ip, _, err := net.ParseCIDR(src)
		if err != nil || !cidr.Contains(ip) || !strings.HasPrefix(chain, "CNI-") {
			continue
		}
		specs, chains = append(specs, args), append(chains, chain)
	}
	return specs, chains
}

// splitRule splits an iptables -S rule into arguments, a double-quoted one
// (the comment, with \" inside) as one argument without its quotes.
func splitRule(s string) []string {
	var out []string
	var cur strings.Builder
	quoted, escaped, inArg := false, false, false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quoted:
			escaped = true
		case r == '"':
			quoted, inArg = !quoted, true
		case r == ' ' && !quoted:
			if inArg {
				out = append(out, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		out = append(out, cur.String())
	}
	return out
}

// removeStaleMasquerade deletes the bridge plugin's rules left for addresses
// of cidr, and their chains. It returns how many it removed; no iptables
// (nothing could have been written) is not an error.
func removeStaleMasquerade(cidr *net.IPNet) (int, error) {
	iptables, err := exec.LookPath("iptables")
	if err != nil {
		return 0, nil
	}
	out, err := exec.Command(iptables, "-w", "-t", "nat", "-S", "POSTROUTING").Output()
	if err != nil {
		return 0, fmt.Errorf("iptables -t nat -S POSTROUTING: %w", err)
	}
	specs, chains := staleMasquerade(string(out), cidr)
	var errs []string
	for i, spec := range specs {
		for _, args := range [][]string{
			append([]string{"-w", "-t", "nat", "-D", "POSTROUTING"}, spec...),
			{"-w", "-t", "nat", "-F", chains[i]},
			{"-w", "-t", "nat", "-X", chains[i]},
		} {
			if out, err := exec.Command(iptables, args...).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Sprintf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out))))
			}
		}
	}
	if len(errs) > 0 {
		return len(specs), fmt.Errorf("removing stale pod masquerade rules: %s", strings.Join(errs, "; "))
	}
	return len(specs), nil
}
