package linux

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"

	"sigs.k8s.io/knftables"

	"nubo/internal/network/netns"
)

// Each VPC router namespace holds one nftables table of nubo's, "ip nubo":
//
//	set subnets         the VPC's subnets (interval; element comment: subnet ID)
//	set public_subnets  the subnets routed to an internet gateway
//	map to_private      public IP → private IP (DNAT of inbound traffic)
//	map to_public       private IP → public IP (SNAT of outbound traffic)
//	set natted          the private IPs that have a public IP (keys of to_public)
//	map in_ports        instance port → goto in-<port>   (security groups,
//	map out_ports       instance port → goto out-<port>   see firewall.go)
//
// NAT is stateless, one to one, as EC2's internet gateway does it: the
// destination of what comes from the gateway and the source of what goes to
// it are rewritten by map lookup, packet by packet, keeping no state (the
// security groups' connection tracking sees the private addresses). Per-packet work is a few hash and interval lookups whatever
// the number of public IPs; a change of the maps applies to the next
// packet, so a public IP moves at once and a cleared one is cut at once.
// (ICMP errors about such traffic keep the private address in their quoted
// header.)
const (
	nftTable      = "nubo"
	setSubnets    = "subnets"
	setPublic     = "public_subnets"
	setNatted     = "natted"
	mapToPrivate  = "to_private"
	mapToPublic   = "to_public"
	chainDNAT     = "prerouting"
	chainSNAT     = "postrouting"
	chainForward  = "forward"
	chainInput    = "input"
	chainIngress  = "ingress"
	chainEgress   = "egress"
	mapInPorts    = "in_ports"
	mapOutPorts   = "out_ports"
	chainChecked  = "fw_checked"
	chainCheck    = "fw_check_done"
	chainRefuse   = "refuse"
	transitIfname = `"` + routerTransit + `"`
)

// routerRuleset adds the router's table, sets, maps and chains to tx (adding
// what exists is a no-op) and replaces the chains' rules; set and map
// elements are left alone.
func routerRuleset(tx *knftables.Transaction, vpcID string) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("nubo VPC router " + vpcID)})
	tx.Add(&knftables.Set{Name: setSubnets, Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}})
	tx.Add(&knftables.Set{Name: setPublic, Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}})
	tx.Add(&knftables.Set{Name: setNatted, Type: "ipv4_addr"})
	tx.Add(&knftables.Map{Name: mapToPrivate, Type: "ipv4_addr : ipv4_addr"})
	tx.Add(&knftables.Map{Name: mapToPublic, Type: "ipv4_addr : ipv4_addr"})
	tx.Add(&knftables.Map{Name: mapInPorts, Type: "ifname : verdict"})
	tx.Add(&knftables.Map{Name: mapOutPorts, Type: "ifname : verdict"})

	chain := func(name string, t knftables.BaseChainType, hook knftables.BaseChainHook, prio knftables.BaseChainPriority, policy knftables.BaseChainPolicy, rules ...string) {
		tx.Add(&knftables.Chain{Name: name, Type: &t, Hook: &hook, Priority: &prio, Policy: &policy})
		tx.Flush(&knftables.Chain{Name: name})
		for _, r := range rules {
			tx.Add(&knftables.Rule{Chain: name, Rule: r})
		}
	}
	chain(chainDNAT, knftables.FilterType, knftables.PreroutingHook, knftables.RawPriority, knftables.AcceptPolicy,
		knftables.Concat("iifname", transitIfname, "ip daddr set ip daddr map", "@"+mapToPrivate))
	chain(chainSNAT, knftables.FilterType, knftables.PostroutingHook, knftables.SNATPriority, knftables.AcceptPolicy,
		knftables.Concat("oifname", transitIfname, "ip saddr set ip saddr map", "@"+mapToPublic))
	// A connection to a VPC address no interface has (one between
	// instances: an ENI moving, an address being reassigned) is refused
	// with a reset. The unreachable route's ICMP error reaches a client
	// while its connect() still holds the socket (it comes back at once
	// over the veths), so the kernel keeps it as a soft error and the
	// client waits a second for its SYN's retry; a reset is queued and
	// ends the attempt at once, and the next one finds the new holder.
	chain(chainRefuse, knftables.FilterType, knftables.PreroutingHook, knftables.FilterPriority, knftables.AcceptPolicy,
		// (fib's type is the address's, not the route's: a route with no
		// output interface is the unreachable one; the router's own
		// addresses, also without one, are not refused.)
		"tcp flags & (syn | ack) == syn fib daddr type != local fib daddr oif missing reject with tcp reset")
	// A port's chain returns when its egress allows; a port without one
	// (no firewall set for it yet) passes nothing.
	tx.Add(&knftables.Chain{Name: chainEgress})
	tx.Flush(&knftables.Chain{Name: chainEgress})
	tx.Add(&knftables.Rule{Chain: chainEgress, Rule: "iifname vmap @" + mapOutPorts})
	tx.Add(&knftables.Rule{Chain: chainEgress, Rule: "drop"})
	tx.Add(&knftables.Chain{Name: chainIngress})
	tx.Flush(&knftables.Chain{Name: chainIngress})
	tx.Add(&knftables.Rule{Chain: chainIngress, Rule: "oifname vmap @" + mapInPorts})
	tx.Add(&knftables.Rule{Chain: chainIngress, Rule: "drop"})
	// Written by SetFirewall only (see firewall.go): left as they are.
	tx.Add(&knftables.Chain{Name: chainChecked})
	tx.Add(&knftables.Chain{Name: chainCheck})
	// Security groups need connection tracking here, in the router; NAT
	// stays stateless (raw priority, before tracking starts), so tracking
	// sees private addresses and each flow once.
	chain(chainForward, knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority, knftables.DropPolicy,
		// A flow already checked under the router's current state passes
		// at once (see firewall.go: any change starts a new generation, and
		// every flow is checked again on its next packet).
		"jump "+chainChecked,
		// To and from the gateway: only a public subnet's instances with a
		// public IP, checked per packet so a change cuts flows at once.
		knftables.Concat("oifname", transitIfname, "ip saddr !=", "@"+setPublic, "drop"),
		knftables.Concat("oifname", transitIfname, "ip saddr !=", "@"+setNatted, "drop"),
		knftables.Concat("iifname", transitIfname, "ip daddr !=", "@"+setPublic, "drop"),
		knftables.Concat("iifname", transitIfname, "ip daddr !=", "@"+setNatted, "drop"),
		// Replies to what the rules let through pass.
		"ct direction reply accept",
		"ct state related accept",
		// From an instance (source addresses are checked by strict
		// reverse-path filtering on every port): its groups' egress.
		knftables.Concat("iifname !=", transitIfname, "jump", chainEgress),
		// To an instance: its groups' ingress.
		knftables.Concat("oifname !=", transitIfname, "jump", chainIngress),
		"jump "+chainCheck,
		"accept")
	chain(chainInput, knftables.FilterType, knftables.InputHook, knftables.FilterPriority, knftables.AcceptPolicy,
		// The router itself (resolver, gateways) serves only its instances.
		knftables.Concat("iifname", transitIfname, "drop"))
}

// nftables returns the knftables interface, made once. It is not tied to a
// namespace: every call runs `nft` from a thread inside the namespace (see
// nftRun), and the child inherits the thread's namespace.
func (d *Driver) nftables() (knftables.Interface, error) {
	d.nftOnce.Do(func() {
		d.nft, d.nftErr = knftables.New(knftables.IPv4Family, nftTable)
		if d.nftErr != nil {
			d.nftErr = fmt.Errorf("nftables (Debian package nftables): %w", d.nftErr)
		}
	})
	return d.nft, d.nftErr
}

// nftRun runs a transaction inside the namespace at path. A transaction on
// a VPC router also starts a new generation of its state, so that every
// flow is checked again (firewall.go).
func (d *Driver) nftRun(ctx context.Context, path string, tx *knftables.Transaction) error {
	if tx.NumOperations() == 0 {
		return nil
	}
	if kind, _ := d.nsKind(filepath.Base(path)); kind == "vpc" {
		g := d.gen.Add(1)
		if g == 0 { // 0 is every new flow's mark
			g = d.gen.Add(1)
		}
		tx.Flush(&knftables.Chain{Name: chainChecked})
		tx.Add(&knftables.Rule{Chain: chainChecked, Rule: fmt.Sprintf("ct mark %d accept", g)})
		tx.Flush(&knftables.Chain{Name: chainCheck})
		tx.Add(&knftables.Rule{Chain: chainCheck, Rule: fmt.Sprintf("ct mark set %d", g)})
	}
	nft, err := d.nftables()
	if err != nil {
		return err
	}
	err = netns.Do(path, func() error { return nft.Run(ctx, tx) })
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", path, err)
	}
	return nil
}

// nftDo runs f with the nftables interface inside the namespace at path; a
// missing table reads as empty.
func (d *Driver) nftDo(ctx context.Context, path string, f func(knftables.Interface) error) error {
	nft, err := d.nftables()
	if err != nil {
		return err
	}
	err = netns.Do(path, func() error { return f(nft) })
	if err != nil && !knftables.IsNotFound(err) {
		return fmt.Errorf("nftables in %s: %w", path, err)
	}
	return nil
}

// nftTx starts a transaction.
func (d *Driver) nftTx() (*knftables.Transaction, error) {
	nft, err := d.nftables()
	if err != nil {
		return nil, err
	}
	return nft.NewTransaction(), nil
}

// nftElements lists a set's or map's elements inside the namespace at path;
// a missing table or set has none.
func (d *Driver) nftElements(ctx context.Context, path, kind, name string) ([]*knftables.Element, error) {
	nft, err := d.nftables()
	if err != nil {
		return nil, err
	}
	var elems []*knftables.Element
	err = netns.Do(path, func() (err error) {
		elems, err = nft.ListElements(ctx, kind, name)
		return err
	})
	if knftables.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nftables %s %s in %s: %w", kind, name, path, err)
	}
	return elems, nil
}

// natMaps reads a router's public IP maps.
func (d *Driver) natMaps(ctx context.Context, path string) (toPrivate, toPublic map[netip.Addr]netip.Addr, err error) {
	if toPrivate, err = d.addrMap(ctx, path, mapToPrivate); err != nil {
		return nil, nil, err
	}
	if toPublic, err = d.addrMap(ctx, path, mapToPublic); err != nil {
		return nil, nil, err
	}
	return toPrivate, toPublic, nil
}

// addrMap reads one address-to-address map of a router.
func (d *Driver) addrMap(ctx context.Context, path, name string) (map[netip.Addr]netip.Addr, error) {
	elems, err := d.nftElements(ctx, path, "map", name)
	if err != nil {
		return nil, err
	}
	m := make(map[netip.Addr]netip.Addr, len(elems))
	for _, e := range elems {
		if len(e.Key) != 1 || len(e.Value) != 1 {
			return nil, fmt.Errorf("map %s: unexpected element %v", name, e)
		}
		k, err1 := netip.ParseAddr(e.Key[0])
		v, err2 := netip.ParseAddr(e.Value[0])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("map %s: unexpected element %v", name, e)
		}
		m[k] = v
	}
	return m, nil
}

func addrElem(set string, ip netip.Addr) *knftables.Element {
	return &knftables.Element{Set: set, Key: []string{ip.String()}}
}

func natElems(pub, priv netip.Addr) []*knftables.Element {
	return []*knftables.Element{
		{Map: mapToPrivate, Key: []string{pub.String()}, Value: []string{priv.String()}},
		{Map: mapToPublic, Key: []string{priv.String()}, Value: []string{pub.String()}},
		addrElem(setNatted, priv),
	}
}
