package linux

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"nubo/internal/network"
	"nubo/internal/network/netns"
)

// A public IP lives in two places: the owning router's NAT maps (one
// nftables transaction changes both directions at once) and a /32 route in
// the gateway toward that router's transit link. The route decides: it is
// the owner of record, and map entries of a public IP in any other router
// are stale (a crash in the middle of a move), harmless (nothing routes the
// IP there, and the gateway's reverse-path filter drops what that router
// would send from it) and removed by the next EnsureVPC of that VPC
// (syncPublic). All public IP changes hold the "gw" lock.

// SetPublicIP maps publicIP to privateIP in the VPC, one to one. A move
// maps the IP in the new router, then points the gateway's route there,
// then unmaps it in the old router: no moment when the route leads to a
// router that does not map it.
func (d *Driver) SetPublicIP(ctx context.Context, vpcID string, privateIP, publicIP netip.Addr) error {
	if err := d.public.Check(publicIP); err != nil {
		return err
	}
	if !privateIP.Is4() {
		return fmt.Errorf("%w: private IP %s is not IPv4", network.ErrInvalid, privateIP)
	}
	defer d.begin("gw")()
	if err := ctx.Err(); err != nil {
		return err
	}
	rpath, rh, cidr, err := d.router(vpcID)
	if err != nil {
		return err
	}
	defer rh.Close()
	if !cidr.Contains(privateIP) {
		return fmt.Errorf("%w: private IP %s is outside VPC %s (%s)", network.ErrInvalid, privateIP, vpcID, cidr)
	}
	gh, err := netns.NewHandle(d.gwNS())
	if err != nil {
		return err
	}
	defer gh.Close()
	transit, err := linkByName(gh, transitName(vpcID))
	if err != nil {
		return err
	}
	if transit == nil {
		return fmt.Errorf("%w: transit link of VPC %s (call EnsureVPC)", network.ErrNotFound, vpcID)
	}
	owner, err := publicOwner(gh, publicIP)
	if err != nil {
		return err
	}

	toPrivate, toPublic, err := d.natMaps(ctx, rpath)
	if err != nil {
		return err
	}
	tx, err := d.nftTx()
	if err != nil {
		return err
	}
	var released []netip.Addr
	if old, ok := toPrivate[publicIP]; ok && old != privateIP {
		for _, e := range natElems(publicIP, old) {
			tx.Delete(e)
		}
	}
	if oldPub, ok := toPublic[privateIP]; ok && oldPub != publicIP {
		for _, e := range natElems(oldPub, privateIP) {
			tx.Delete(e)
		}
		released = append(released, oldPub)
	}
	changed := toPrivate[publicIP] != privateIP || toPublic[privateIP] != publicIP
	if changed {
		for _, e := range natElems(publicIP, privateIP) {
			tx.Add(e)
		}
		if err := d.nftRun(ctx, rpath, tx); err != nil {
			return err
		}
	}
	if err := ensureRoute(gh, publicRoute(publicIP, transit)); err != nil {
		return err
	}
	for _, ip := range released {
		if o, err := publicOwner(gh, ip); err != nil {
			return err
		} else if o == vpcID {
			if err := deleteRoutes(gh, netip.PrefixFrom(ip, 32)); err != nil {
				return err
			}
		}
	}
	if owner != "" && owner != vpcID {
		return d.unmapPublic(ctx, owner, publicIP)
	}
	return nil
}

// ClearPublicIP unmaps a public IP wherever it is.
func (d *Driver) ClearPublicIP(ctx context.Context, publicIP netip.Addr) error {
	if err := d.public.Check(publicIP); err != nil {
		return err
	}
	defer d.begin("gw")()
	if err := ctx.Err(); err != nil {
		return err
	}
	if ok, err := netns.IsNS(d.gwNS()); err != nil || !ok {
		return err // no host network: nothing is mapped
	}
	gh, err := netns.NewHandle(d.gwNS())
	if err != nil {
		return err
	}
	defer gh.Close()
	owner, err := publicOwner(gh, publicIP)
	if err != nil {
		return err
	}
	if owner != "" {
		err = d.unmapPublic(ctx, owner, publicIP)
	} else {
		// No route: a crash may have left it in some router's maps.
		err = d.forEachRouter(func(vpcID string) error { return d.unmapPublic(ctx, vpcID, publicIP) })
	}
	if err != nil {
		return err
	}
	return deleteRoutes(gh, netip.PrefixFrom(publicIP, 32))
}

// publicOwner returns the VPC the gateway routes a public IP to ("" if none).
func publicOwner(gh *netlink.Handle, ip netip.Addr) (string, error) {
	routes, err := routesTo(gh, netip.PrefixFrom(ip, 32))
	if err != nil {
		return "", err
	}
	for _, r := range routes {
		l, err := gh.LinkByIndex(r.LinkIndex)
		if err != nil {
			return "", fmt.Errorf("gateway route %s: %w", ip, err)
		}
		if network.ValidID(l.Attrs().Alias, "vpc-") {
			return l.Attrs().Alias, nil
		}
	}
	return "", nil
}

// publicOwners maps every routed public IP to its VPC.
func publicOwners(gh *netlink.Handle) (map[netip.Addr]string, error) {
	routes, err := mainRoutes(gh)
	if err != nil {
		return nil, err
	}
	links, err := linkList(gh)
	if err != nil {
		return nil, err
	}
	alias := make(map[int]string)
	for _, l := range links {
		if network.ValidID(l.Attrs().Alias, "vpc-") {
			alias[l.Attrs().Index] = l.Attrs().Alias
		}
	}
	out := make(map[netip.Addr]string)
	for _, r := range routes {
		if dst := routeDst(r); dst.Bits() == 32 && alias[r.LinkIndex] != "" {
			out[dst.Addr()] = alias[r.LinkIndex]
		}
	}
	return out, nil
}

// syncPublic reconciles a router's public IPs with the gateway's routes:
// it removes those the gateway routes to another VPC (left by a crash
// during a move) and routes those the gateway routes nowhere (a crash
// before the route was made, or a transit link made anew). Holds "gw".
func (d *Driver) syncPublic(ctx context.Context, vpcID string) error {
	gh, err := netns.NewHandle(d.gwNS())
	if err != nil {
		return err
	}
	defer gh.Close()
	owners, err := publicOwners(gh)
	if err != nil {
		return err
	}
	toPrivate, err := d.addrMap(ctx, d.routerNS(vpcID), mapToPrivate)
	if err != nil {
		return err
	}
	transit, err := linkByName(gh, transitName(vpcID))
	if err != nil || transit == nil {
		return err
	}
	for pub := range toPrivate {
		switch o := owners[pub]; {
		case o == "":
			if err := ensureRoute(gh, publicRoute(pub, transit)); err != nil {
				return err
			}
		case o != vpcID:
			if err := d.unmapPublic(ctx, vpcID, pub); err != nil {
				return err
			}
		}
	}
	return nil
}

// publicRoute is the gateway's route of a public IP to a VPC's router.
func publicRoute(pub netip.Addr, transit netlink.Link) netlink.Route {
	return netlink.Route{
		Dst: ipNet(netip.PrefixFrom(pub, 32)), LinkIndex: transit.Attrs().Index,
		Gw: routerTransitIP.AsSlice(), Flags: int(netlink.FLAG_ONLINK), Table: unix.RT_TABLE_MAIN,
	}
}

// unmapPublic removes a public IP from a router's maps.
func (d *Driver) unmapPublic(ctx context.Context, vpcID string, publicIP netip.Addr) error {
	rpath := d.routerNS(vpcID)
	if ok, err := netns.IsNS(rpath); err != nil || !ok {
		return err
	}
	toPrivate, toPublic, err := d.natMaps(ctx, rpath)
	if err != nil {
		return err
	}
	priv, ok := toPrivate[publicIP]
	if !ok {
		return nil
	}
	tx, err := d.nftTx()
	if err != nil {
		return err
	}
	for _, e := range natElems(publicIP, priv) {
		if e.Map == mapToPrivate || toPublic[priv] == publicIP {
			tx.Delete(e)
		}
	}
	return d.nftRun(ctx, rpath, tx)
}

// forEachRouter calls f with the ID of every router namespace.
func (d *Driver) forEachRouter(f func(vpcID string) error) error {
	names, err := netns.List(d.cfg.NetNSDir, d.cfg.Prefix+"-")
	if err != nil {
		return err
	}
	for _, n := range names {
		if kind, id := d.nsKind(n); kind == "vpc" {
			if err := f(id); err != nil {
				return err
			}
		}
	}
	return nil
}
