package linux

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"nubo/internal/network"
	"nubo/internal/network/netns"
)

// Settings of a router namespace. Strict reverse-path filtering on each
// instance port (set by Attach, with proxy ARP) is the anti-spoofing: a
// port routes only its instance's addresses (/32), so a packet from any
// other source on that port is dropped. The transit link needs none.
var routerSysctls = []netns.Sysctl{
	{Key: "net/ipv4/ip_forward", Value: "1"},
	{Key: "net/ipv4/conf/all/rp_filter", Value: "0"},
	{Key: "net/ipv4/conf/default/rp_filter", Value: "0"},
	{Key: "net/ipv4/conf/all/arp_ignore", Value: "0"},
	{Key: "net/ipv4/conf/default/arp_ignore", Value: "0"},
	{Key: "net/ipv4/conf/all/send_redirects", Value: "0"},
	{Key: "net/ipv4/conf/default/send_redirects", Value: "0"},
	// A VPC address no interface has answers "host unreachable" to every
	// packet, not to one a second: a client's connection fails at once
	// and its next try reaches an address's new holder (an ENI moved, a
	// secondary address reassigned) instead of waiting out a lost SYN.
	{Key: "net/ipv4/icmp_ratelimit", Value: "0"},
	// Packets here come from nubo's own veths: conntrack need not verify
	// their checksums again.
	{Key: "net/netfilter/nf_conntrack_checksum", Value: "0", Optional: true},
	{Key: "net/ipv6/conf/all/disable_ipv6", Value: "1", Optional: true},
	{Key: "net/ipv6/conf/default/disable_ipv6", Value: "1", Optional: true},
}

// EnsureVPC creates the router namespace, its transit link to the gateway,
// its routes and nftables table, and starts its resolver.
func (d *Driver) EnsureVPC(ctx context.Context, vpc network.VPC) error {
	if err := vpc.Validate(); err != nil {
		return err
	}
	if vpc.CIDR.Overlaps(d.cfg.PublicRange) {
		return fmt.Errorf("%w: VPC %s: CIDR %s overlaps the public range %s", network.ErrInvalid, vpc.ID, vpc.CIDR, d.cfg.PublicRange)
	}
	defer d.begin("gw", "vpc/"+vpc.ID)()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.requireHost(); err != nil {
		return err
	}
	path := d.routerNS(vpc.ID)
	if ok, err := netns.IsNS(path); err != nil {
		return err
	} else if ok {
		cidr, err := d.vpcCIDR(path)
		if err != nil {
			return err
		}
		if cidr.IsValid() && cidr != vpc.CIDR {
			return fmt.Errorf("%w: VPC %s exists with CIDR %s", network.ErrConflict, vpc.ID, cidr)
		}
	}
	made, err := netns.Create(path)
	if err != nil {
		return fmt.Errorf("router namespace: %w", err)
	}
	if made { // a resolver of ours, if any, serves a namespace that is gone
		d.forgetFirewall(vpc.ID)
		d.stopMetadata(vpc.ID)
		if err := d.stopResolver(ctx, vpc.ID); err != nil {
			return err
		}
	}
	if err := netns.SetSysctls(path, routerSysctls...); err != nil {
		return fmt.Errorf("router namespace: %w", err)
	}
	rh, err := netns.NewHandle(path)
	if err != nil {
		return err
	}
	defer rh.Close()
	lo, err := linkByName(rh, "lo")
	if err != nil {
		return err
	}
	if err := ensureUp(rh, lo, 0); err != nil {
		return err
	}
	if err := ensureAddr(rh, lo, netip.PrefixFrom(network.DNSAddr(vpc.CIDR), 32)); err != nil {
		return err
	}
	if err := ensureAddr(rh, lo, netip.PrefixFrom(MetadataIP, 32)); err != nil {
		return err
	}
	transit, err := d.ensureTransit(vpc.ID, rh)
	if err != nil {
		return err
	}
	// Addresses of the VPC that no instance has are unreachable (not sent
	// to the gateway); everything else goes to the gateway.
	if err := ensureRoute(rh, netlink.Route{Dst: ipNet(vpc.CIDR), Type: unix.RTN_UNREACHABLE, Table: unix.RT_TABLE_MAIN}); err != nil {
		return err
	}
	if err := ensureRoute(rh, netlink.Route{
		LinkIndex: transit.Attrs().Index, Gw: gwTransitIP.AsSlice(), Flags: int(netlink.FLAG_ONLINK), Table: unix.RT_TABLE_MAIN,
	}); err != nil {
		return err
	}
	tx, err := d.nftTx()
	if err != nil {
		return err
	}
	routerRuleset(tx, vpc.ID)
	if err := d.nftRun(ctx, path, tx); err != nil {
		return err
	}
	if err := d.syncPublic(ctx, vpc.ID); err != nil {
		return err
	}
	if err := d.startResolver(vpc); err != nil {
		return err
	}
	return d.startMetadata(vpc.ID)
}

// ensureTransit finds or makes the veth pair between the gateway (t<hash>,
// alias: the VPC ID) and the router (gw0), each end with its link-local
// address, up.
func (d *Driver) ensureTransit(vpcID string, rh *netlink.Handle) (netlink.Link, error) {
	gh, err := netns.NewHandle(d.gwNS())
	if err != nil {
		return nil, err
	}
	defer gh.Close()
	name := transitName(vpcID)
	gwEnd, err := linkByName(gh, name)
	if err != nil {
		return nil, err
	}
	rEnd, err := linkByName(rh, routerTransit)
	if err != nil {
		return nil, err
	}
	if gwEnd == nil || rEnd == nil || gwEnd.Attrs().Alias != vpcID {
		if err := deleteLink(gh, name); err != nil {
			return nil, err
		}
		if err := deleteLink(rh, routerTransit); err != nil {
			return nil, err
		}
		f, err := os.Open(d.routerNS(vpcID))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: name, MTU: d.cfg.MTU, Alias: vpcID, TxQLen: -1},
			PeerName:      routerTransit,
			PeerNamespace: netlink.NsFd(int(f.Fd())),
			PeerMTU:       uint32(d.cfg.MTU),
		}
		if _, err := addVeth(gh, veth); err != nil {
			return nil, fmt.Errorf("create transit link of %s: %w", vpcID, err)
		}
		if gwEnd, err = linkByName(gh, name); err != nil {
			return nil, err
		}
		if rEnd, err = linkByName(rh, routerTransit); err != nil {
			return nil, err
		}
		if gwEnd == nil || rEnd == nil {
			return nil, fmt.Errorf("transit link of %s vanished after creation", vpcID)
		}
	}
	if err := ensureAddr(gh, gwEnd, netip.PrefixFrom(gwTransitIP, 32)); err != nil {
		return nil, err
	}
	if err := ensureAddr(rh, rEnd, netip.PrefixFrom(routerTransitIP, 32)); err != nil {
		return nil, err
	}
	err = netns.SetSysctls(d.gwNS(), netns.Sysctl{Key: "net/ipv4/conf/" + name + "/rp_filter", Value: "1"})
	if err != nil {
		return nil, err
	}
	if err := d.ensureLink(gh, gwEnd); err != nil {
		return nil, err
	}
	if err := d.ensureLink(rh, rEnd); err != nil {
		return nil, err
	}
	// Permanent neighbours both ways: no ARP on the transit link. (The
	// router's ARP requests would fail anyway: their sender 169.254.0.2 is
	// behind every transit link, so the gateway's reverse-path filter has
	// no route to accept it by.)
	for _, n := range []struct {
		h   *netlink.Handle
		on  netlink.Link
		ip  netip.Addr
		mac net.HardwareAddr
	}{
		{gh, gwEnd, routerTransitIP, rEnd.Attrs().HardwareAddr},
		{rh, rEnd, gwTransitIP, gwEnd.Attrs().HardwareAddr},
	} {
		err := n.h.NeighSet(&netlink.Neigh{
			LinkIndex: n.on.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: n.ip.AsSlice(), HardwareAddr: n.mac,
		})
		if err != nil {
			return nil, fmt.Errorf("transit neighbour %s: %w", n.ip, err)
		}
	}
	return rEnd, nil
}

// vpcCIDR reads a router's VPC CIDR (its unreachable route); invalid if the
// router is only half made.
func (d *Driver) vpcCIDR(path string) (netip.Prefix, error) {
	rh, err := netns.NewHandle(path)
	if err != nil {
		return netip.Prefix{}, err
	}
	defer rh.Close()
	return vpcCIDRFrom(rh)
}

func vpcCIDRFrom(rh *netlink.Handle) (netip.Prefix, error) {
	rs, err := mainRoutes(rh)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("router routes: %w", err)
	}
	for _, r := range rs {
		if r.Type == unix.RTN_UNREACHABLE && r.Dst != nil {
			return toPrefix(r.Dst), nil
		}
	}
	return netip.Prefix{}, nil
}

// router opens an existing router namespace: its path, a handle and its
// CIDR; ErrNotFound if the VPC does not exist.
func (d *Driver) router(vpcID string) (string, *netlink.Handle, netip.Prefix, error) {
	if !network.ValidID(vpcID, "vpc-") {
		return "", nil, netip.Prefix{}, fmt.Errorf("%w: VPC ID %q", network.ErrInvalid, vpcID)
	}
	path := d.routerNS(vpcID)
	ok, err := netns.IsNS(path)
	if err != nil {
		return "", nil, netip.Prefix{}, err
	}
	if !ok {
		return "", nil, netip.Prefix{}, fmt.Errorf("%w: VPC %s", network.ErrNotFound, vpcID)
	}
	rh, err := netns.NewHandle(path)
	if err != nil {
		return "", nil, netip.Prefix{}, err
	}
	cidr, err := vpcCIDRFrom(rh)
	if err == nil && !cidr.IsValid() {
		err = fmt.Errorf("%w: VPC %s is half made (call EnsureVPC)", network.ErrNotFound, vpcID)
	}
	if err != nil {
		rh.Close()
		return "", nil, netip.Prefix{}, err
	}
	return path, rh, cidr, nil
}

// DeleteVPC removes the router, its transit link and its resolver.
func (d *Driver) DeleteVPC(ctx context.Context, vpcID string) error {
	if !network.ValidID(vpcID, "vpc-") {
		return fmt.Errorf("%w: VPC ID %q", network.ErrInvalid, vpcID)
	}
	defer d.begin("gw", "vpc/"+vpcID)()
	if err := ctx.Err(); err != nil {
		return err
	}
	path := d.routerNS(vpcID)
	ok, err := netns.IsNS(path)
	if err != nil {
		return err
	}
	if ok {
		subnets, err := d.subnets(ctx, path)
		if err != nil {
			return err
		}
		if len(subnets) > 0 {
			return fmt.Errorf("%w: VPC %s has %d subnets", network.ErrInUse, vpcID, len(subnets))
		}
		pubs, err := d.publicIPs(ctx, vpcID)
		if err != nil {
			return err
		}
		if len(pubs) > 0 {
			return fmt.Errorf("%w: VPC %s has %d public IPs", network.ErrInUse, vpcID, len(pubs))
		}
	}
	return d.removeVPC(ctx, vpcID)
}

// removeVPC stops the resolver and deletes the transit link and the router
// namespace, whatever they hold.
func (d *Driver) removeVPC(ctx context.Context, vpcID string) error {
	d.forgetFirewall(vpcID)
	d.stopMetadata(vpcID)
	if err := d.stopResolver(ctx, vpcID); err != nil {
		return err
	}
	if ok, _ := netns.IsNS(d.gwNS()); ok {
		gh, err := netns.NewHandle(d.gwNS())
		if err != nil {
			return err
		}
		err = deleteLink(gh, transitName(vpcID))
		gh.Close()
		if err != nil {
			return err
		}
	}
	return netns.Delete(d.routerNS(vpcID))
}
