package linux

import (
	"context"
	"fmt"
	"net/netip"

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
//
// NAT is stateless, one to one, as EC2's internet gateway does it: the
// destination of what comes from the gateway and the source of what goes to
// it are rewritten by map lookup, packet by packet, with no connection
// tracking. Per-packet work is a few hash and interval lookups whatever
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
	chain(chainForward, knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority, knftables.DropPolicy,
		// Between the VPC's instances (source addresses are checked by
		// strict reverse-path filtering on every port).
		knftables.Concat("iifname !=", transitIfname, "oifname !=", transitIfname, "accept"),
		// To and from the gateway: only a public subnet's instances with a
		// public IP.
		knftables.Concat("oifname", transitIfname, "ip saddr", "@"+setPublic, "ip saddr", "@"+setNatted, "accept"),
		knftables.Concat("iifname", transitIfname, "ip daddr", "@"+setPublic, "ip daddr", "@"+setNatted, "accept"))
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

// nftRun runs a transaction inside the namespace at path.
func (d *Driver) nftRun(ctx context.Context, path string, tx *knftables.Transaction) error {
	if tx.NumOperations() == 0 {
		return nil
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
