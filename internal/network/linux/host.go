package linux

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"nubo/internal/network"
	"nubo/internal/network/netns"
)

// Settings of the gateway namespace: a plain router with no IPv6.
// Reverse-path filtering is on for the transit links only (ensureTransit):
// a router cannot send from a public IP the gateway routes to another VPC.
var gwSysctls = []netns.Sysctl{
	{Key: "net/ipv4/ip_forward", Value: "1"},
	{Key: "net/ipv4/conf/all/rp_filter", Value: "0"},
	{Key: "net/ipv4/conf/default/rp_filter", Value: "0"},
	{Key: "net/ipv4/conf/all/arp_ignore", Value: "0"},
	{Key: "net/ipv4/conf/default/arp_ignore", Value: "0"},
	{Key: "net/ipv6/conf/all/disable_ipv6", Value: "1", Optional: true},
	{Key: "net/ipv6/conf/default/disable_ipv6", Value: "1", Optional: true},
}

// EnsureHost creates the gateway namespace, the host link (HostLink here,
// host0 in the gateway) with HostIP/32 and GatewayIP/32 on its ends, and
// the host's one route: PublicRange via GatewayIP.
func (d *Driver) EnsureHost(ctx context.Context) error {
	defer d.begin("gw")()
	if err := ctx.Err(); err != nil {
		return err
	}
	gw := d.gwNS()
	if _, err := netns.Create(gw); err != nil {
		return fmt.Errorf("gateway namespace: %w", err)
	}
	if err := netns.SetSysctls(gw, gwSysctls...); err != nil {
		return fmt.Errorf("gateway namespace: %w", err)
	}
	gh, err := netns.NewHandle(gw)
	if err != nil {
		return err
	}
	defer gh.Close()
	hh, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer hh.Close()

	host, peer, err := d.ensureHostLink(hh, gh)
	if err != nil {
		return err
	}
	// No IPv6 on the host's link: no link-local address, no fe80::/64 route.
	// (Written from this goroutine's thread: the process's own namespace.)
	err = netns.WriteSysctls(netns.Sysctl{Key: "net/ipv6/conf/" + d.cfg.HostLink + "/disable_ipv6", Value: "1", Optional: true})
	if err != nil {
		return err
	}
	hostIP := netip.PrefixFrom(d.public.HostIP(), 32)
	gwIP := netip.PrefixFrom(d.public.GatewayIP(), 32)
	if err := ensureAddr(hh, host, hostIP); err != nil {
		return err
	}
	if err := ensureAddr(gh, peer, gwIP); err != nil {
		return err
	}
	if err := d.ensureLink(gh, peer); err != nil {
		return err
	}
	if err := d.ensureLink(hh, host); err != nil {
		return err
	}
	if lo, err := linkByName(gh, "lo"); err != nil {
		return err
	} else if err := ensureUp(gh, lo, 0); err != nil {
		return err
	}
	if err := ensureRoute(gh, netlink.Route{Dst: ipNet(hostIP), LinkIndex: peer.Attrs().Index, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("gateway namespace: %w", err)
	}
	if err := d.ensureHostRoute(hh, host); err != nil {
		return err
	}
	return d.ensureEgress(ctx, gh, peer)
}

// ensureHostLink finds or makes the veth pair between the host and the
// gateway. A link of that name that is not this driver's is a conflict:
// the driver never touches the host's own interfaces.
func (d *Driver) ensureHostLink(hh, gh *netlink.Handle) (host, peer netlink.Link, err error) {
	if host, err = linkByName(hh, d.cfg.HostLink); err != nil {
		return nil, nil, err
	}
	if peer, err = linkByName(gh, gwHostPeer); err != nil {
		return nil, nil, err
	}
	if host != nil && !d.ownHostLink(host, peer) {
		return nil, nil, fmt.Errorf("%w: the host already has a link %s that is not this driver's (alias %q)",
			network.ErrConflict, d.cfg.HostLink, host.Attrs().Alias)
	}
	if host != nil && peer != nil && host.Attrs().ParentIndex == peer.Attrs().Index {
		if host.Attrs().Alias != d.hostAlias() { // a crash between creating and naming it
			if err := hh.LinkSetAlias(host, d.hostAlias()); err != nil {
				return nil, nil, err
			}
		}
		return host, peer, nil
	}
	// Half a pair cannot be repaired (a veth's ends die together, so the
	// other end is elsewhere): start again.
	if host != nil {
		if err := hh.LinkDel(host); err != nil {
			return nil, nil, fmt.Errorf("delete stray %s: %w", d.cfg.HostLink, err)
		}
	}
	if err := deleteLink(gh, gwHostPeer); err != nil {
		return nil, nil, err
	}
	f, err := os.Open(d.gwNS())
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: d.cfg.HostLink, MTU: d.cfg.MTU, Alias: d.hostAlias(), TxQLen: -1},
		PeerName:      gwHostPeer,
		PeerNamespace: netlink.NsFd(int(f.Fd())),
		PeerMTU:       uint32(d.cfg.MTU),
	}
	if _, err := addVeth(hh, veth); err != nil {
		return nil, nil, fmt.Errorf("create host link %s: %w", d.cfg.HostLink, err)
	}
	if host, err = linkByName(hh, d.cfg.HostLink); err != nil {
		return nil, nil, err
	}
	if peer, err = linkByName(gh, gwHostPeer); err != nil {
		return nil, nil, err
	}
	if host == nil || peer == nil {
		return nil, nil, errors.New("host link vanished after creation")
	}
	return host, peer, nil
}

// ownHostLink reports whether a host link of the configured name is this
// driver's: it has the driver's alias, or it is a veth whose peer is the
// gateway's host0 (made, then a crash before the alias was set).
func (d *Driver) ownHostLink(host, peer netlink.Link) bool {
	if host.Type() != "veth" {
		return false
	}
	if host.Attrs().Alias == d.hostAlias() {
		return true
	}
	return peer != nil && host.Attrs().Alias == "" &&
		host.Attrs().ParentIndex == peer.Attrs().Index && peer.Attrs().ParentIndex == host.Attrs().Index
}

// ensureHostRoute adds the host's one route, unless another link already
// routes the public range (another nubo): that is a conflict.
func (d *Driver) ensureHostRoute(hh *netlink.Handle, host netlink.Link) error {
	want := netlink.Route{
		Dst:       ipNet(d.cfg.PublicRange),
		Gw:        d.public.GatewayIP().AsSlice(),
		Src:       d.public.HostIP().AsSlice(),
		LinkIndex: host.Attrs().Index,
		Flags:     int(netlink.FLAG_ONLINK),
		Scope:     netlink.SCOPE_UNIVERSE,
		Table:     unix.RT_TABLE_MAIN,
	}
	have, err := routesTo(hh, d.cfg.PublicRange)
	if err != nil {
		return err
	}
	for _, r := range have {
		if r.LinkIndex != host.Attrs().Index {
			return fmt.Errorf("%w: the host already routes %s through another link (index %d)",
				network.ErrConflict, d.cfg.PublicRange, r.LinkIndex)
		}
	}
	if err := ensureRoute(hh, want); err != nil {
		return fmt.Errorf("host route: %w", err)
	}
	return nil
}

// hostReady observes whether the host side is complete.
func (d *Driver) hostReady() (bool, error) {
	if ok, err := netns.IsNS(d.gwNS()); err != nil || !ok {
		return false, err
	}
	hh, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return false, err
	}
	defer hh.Close()
	host, err := linkByName(hh, d.cfg.HostLink)
	if err != nil || host == nil || host.Attrs().Alias != d.hostAlias() {
		return false, err
	}
	routes, err := routesTo(hh, d.cfg.PublicRange)
	if err != nil {
		return false, err
	}
	return len(routes) == 1 && routes[0].LinkIndex == host.Attrs().Index, nil
}

// requireHost reports ErrNotFound unless the gateway namespace exists.
func (d *Driver) requireHost() error {
	ok, err := netns.IsNS(d.gwNS())
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: host network (call EnsureHost)", network.ErrNotFound)
	}
	return nil
}

// removeHost deletes the egress table, the host link (its route goes with
// it) and the gateway namespace.
func (d *Driver) removeHost() error {
	if err := d.removeEgress(context.Background()); err != nil {
		return err
	}
	hh, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer hh.Close()
	host, err := linkByName(hh, d.cfg.HostLink)
	if err != nil {
		return err
	}
	var peer netlink.Link
	if ok, _ := netns.IsNS(d.gwNS()); ok && host != nil {
		if gh, err := netns.NewHandle(d.gwNS()); err == nil {
			peer, _ = linkByName(gh, gwHostPeer)
			gh.Close()
		}
	}
	if host != nil && d.ownHostLink(host, peer) {
		if err := hh.LinkDel(host); err != nil {
			return fmt.Errorf("delete host link: %w", err)
		}
	}
	return netns.Delete(d.gwNS())
}
