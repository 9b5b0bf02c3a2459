package cloud

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// nftDataplane is the load balancers on the machine: their addresses on a
// dummy interface, and an nftables table (family ip) of its own whose nat
// chains run just before the proxies' (priority -110 against their -100)
// and send each new connection to one backend's node port. A backend that
// is the machine itself is left to the machine's own proxy, which serves
// load-balancer addresses as kube-proxy does (the kernel NATs a connection
// once: it could not be sent to the local node port and translated again).
type nftDataplane struct {
	nft       knftables.Interface // nil until first used
	table     string
	iface     string
	mu        sync.Mutex
	newNFT    func(table string) (knftables.Interface, error)
	addresses addressSetter
}

// addressSetter puts exactly a set of /32 addresses on the dummy interface.
type addressSetter func(iface string, addrs []netip.Addr) error

func newDataplane(table, iface string) *nftDataplane {
	return &nftDataplane{table: table, iface: iface, addresses: setDummyAddresses,
		newNFT: func(table string) (knftables.Interface, error) { return knftables.New(knftables.IPv4Family, table) }}
}

const lbPortsMap = "lb-ports"

func (d *nftDataplane) sync(ctx context.Context, lbs []lbView) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nft == nil {
		nft, err := d.newNFT(d.table)
		if err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		d.nft = nft
	}
	var addrs []netip.Addr
	for _, b := range lbs {
		addrs = append(addrs, b.ip)
	}
	if err := d.addresses(d.iface, addrs); err != nil {
		return fmt.Errorf("load-balancer addresses on %s: %w", d.iface, err)
	}
	return d.nft.Run(ctx, renderLoadBalancers(d.nft.NewTransaction(), lbs))
}

// renderLoadBalancers rewrites the whole table in one transaction: there
// are few load balancers, and established connections keep their
// translation in conntrack.
func renderLoadBalancers(tx *knftables.Transaction, lbs []lbView) *knftables.Transaction {
	table := &knftables.Table{Comment: ptr.To("load balancers of the kubeparts cloud provider")}
	tx.Add(table)
	tx.Delete(table)
	tx.Add(table)
	tx.Add(&knftables.Map{Name: lbPortsMap, Type: "ipv4_addr . inet_proto . inet_service : verdict"})
	for _, hook := range []knftables.BaseChainHook{knftables.PreroutingHook, knftables.OutputHook} {
		tx.Add(&knftables.Chain{Name: string(hook), Type: ptr.To(knftables.NATType), Hook: ptr.To(hook),
			Priority: ptr.To(knftables.BaseChainPriority("-110"))})
		tx.Add(&knftables.Rule{Chain: string(hook), Rule: "ip daddr . meta l4proto . th dport vmap @" + lbPortsMap})
	}
	backendChains := map[string]bool{}
	for _, b := range lbs {
		for _, p := range b.ports {
			if len(b.backends) == 0 {
				continue // nothing to send to: the address answers as any unused one
			}
			proto := strings.ToLower(string(p.protocol))
			chain := chainName("lb", fmt.Sprintf("%s/%s/%d", b.ip, proto, p.port))
			tx.Add(&knftables.Chain{Name: chain})
			var targets []string
			for i, be := range b.backends {
				verdict := "accept"
				if !be.machine {
					bc := chainName("node", fmt.Sprintf("%s/%s/%d", be.ip, proto, p.nodePort))
					if !backendChains[bc] {
						backendChains[bc] = true
						tx.Add(&knftables.Chain{Name: bc})
						tx.Add(&knftables.Rule{Chain: bc, Rule: fmt.Sprintf("meta l4proto %s dnat to %s:%d", proto, be.ip, p.nodePort)})
					}
					verdict = "goto " + bc
				}
				targets = append(targets, fmt.Sprintf("%d : %s", i, verdict))
			}
			tx.Add(&knftables.Rule{Chain: chain, Rule: fmt.Sprintf("numgen random mod %d vmap { %s }", len(b.backends), strings.Join(targets, ", "))})
			tx.Add(&knftables.Element{Map: lbPortsMap, Key: []string{b.ip.String(), proto, fmt.Sprint(p.port)}, Value: []string{"goto " + chain}})
		}
	}
	return tx
}

// chainName is a short, unique chain name: prefix and a hash of what the
// chain is for.
func chainName(prefix, what string) string {
	sum := sha256.Sum256([]byte(what))
	return prefix + "-" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10]))
}

// setDummyAddresses makes iface a dummy interface, up, holding exactly
// addrs (as /32s). A kernel without the dummy driver (some VM kernels ship
// none) gets them on the loopback interface instead, labelled lo:<iface>
// so that they are told apart from everything else there.
func setDummyAddresses(iface string, addrs []netip.Addr) error {
	link, label, err := lbLink(iface, len(addrs) > 0)
	if err != nil || link == nil {
		return err
	}
	have, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	for _, a := range have {
		if label != "" && a.Label != label {
			continue // the loopback's own addresses
		}
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		if want[ip] {
			delete(want, ip)
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil {
			return err
		}
	}
	for a := range want {
		if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}, Label: label}); err != nil {
			return err
		}
	}
	return nil
}

// LoopbackLabel is the label of the load-balancer addresses on lo when the
// kernel has no dummy interfaces.
func LoopbackLabel(iface string) string { return ("lo:" + iface)[:min(15, len("lo:"+iface))] }

// lbLink finds (or, with create, makes) the link holding the addresses:
// the dummy interface, else lo with the label to use. No link and no
// error: nothing to hold and no interface yet.
func lbLink(iface string, create bool) (netlink.Link, string, error) {
	link, err := netlink.LinkByName(iface)
	if err == nil {
		if link.Type() != "dummy" {
			return nil, "", fmt.Errorf("%s exists and is a %s interface, not a dummy one: choose another --load-balancer-interface", iface, link.Type())
		}
		return link, "", netlink.LinkSetUp(link)
	}
	if !errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil, "", err
	}
	if create {
		err = netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: iface}})
		if err == nil {
			if link, err = netlink.LinkByName(iface); err != nil {
				return nil, "", err
			}
			return link, "", netlink.LinkSetUp(link)
		}
		if !errors.Is(err, unix.EOPNOTSUPP) {
			return nil, "", err
		}
	}
	// No dummy driver (or nothing to create): the loopback, where earlier
	// addresses may be too.
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, "", err
	}
	return lo, LoopbackLabel(iface), nil
}
