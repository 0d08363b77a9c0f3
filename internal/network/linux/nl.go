package linux

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Measure-then-act helpers over a netlink handle. Dumps interrupted by a
// concurrent change are retried.

func retry[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range 5 {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// linkByName returns the link or nil if there is none.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}

func linkList(h *netlink.Handle) ([]netlink.Link, error) {
	return retry(h.LinkList)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func toAddr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func toPrefix(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(toAddr(n.IP), bits)
}

// addrs returns the IPv4 addresses of a link.
func addrs(h *netlink.Handle, l netlink.Link) ([]netip.Prefix, error) {
	list, err := retry(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", l.Attrs().Name, err)
	}
	var out []netip.Prefix
	for _, a := range list {
		out = append(out, toPrefix(a.IPNet))
	}
	return out, nil
}

// ensureAddr adds p to the link unless it has it.
func ensureAddr(h *netlink.Handle, l netlink.Link, p netip.Prefix) error {
	have, err := addrs(h, l)
	if err != nil {
		return err
	}
	for _, a := range have {
		if a == p {
			return nil
		}
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add %s to %s: %w", p, l.Attrs().Name, err)
	}
	return nil
}

// removeAddr removes p from the link if it has it.
func removeAddr(h *netlink.Handle, l netlink.Link, p netip.Prefix) error {
	have, err := addrs(h, l)
	if err != nil {
		return err
	}
	for _, a := range have {
		if a == p {
			if err := h.AddrDel(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("remove %s from %s: %w", p, l.Attrs().Name, err)
			}
		}
	}
	return nil
}

// ensureUp sets the link's MTU (if mtu > 0) and brings it up.
func ensureUp(h *netlink.Handle, l netlink.Link, mtu int) error {
	if mtu > 0 && l.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("MTU of %s: %w", l.Attrs().Name, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("bring up %s: %w", l.Attrs().Name, err)
		}
	}
	return nil
}

// routesTo lists the main table's IPv4 routes with exactly this destination.
func routesTo(h *netlink.Handle, dst netip.Prefix) ([]netlink.Route, error) {
	filter := &netlink.Route{Dst: ipNet(dst), Table: unix.RT_TABLE_MAIN}
	if dst.Bits() == 0 {
		filter.Dst = nil // the default route
	}
	rs, err := retry(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("routes to %s: %w", dst, err)
	}
	var out []netlink.Route
	for _, r := range rs {
		if toPrefix(r.Dst) == dst || dst.Bits() == 0 && r.Dst == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// sameRoute compares what ensureRoute sets.
func sameRoute(a, b netlink.Route) bool {
	return a.LinkIndex == b.LinkIndex && a.Gw.Equal(b.Gw) && a.Src.Equal(b.Src) && a.Type == b.Type &&
		a.Scope == b.Scope && a.Flags&int(netlink.FLAG_ONLINK) == b.Flags&int(netlink.FLAG_ONLINK)
}

// ensureRoute makes r the one route to its destination in the main table.
func ensureRoute(h *netlink.Handle, r netlink.Route) error {
	dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if r.Dst != nil {
		dst = toPrefix(r.Dst)
	}
	have, err := routesTo(h, dst)
	if err != nil {
		return err
	}
	if len(have) == 1 && sameRoute(have[0], r) {
		return nil
	}
	if err := h.RouteReplace(&r); err != nil {
		return fmt.Errorf("route %s: %w", dst, err)
	}
	return nil
}

// deleteRoutes removes every main-table route to dst.
func deleteRoutes(h *netlink.Handle, dst netip.Prefix) error {
	have, err := routesTo(h, dst)
	if err != nil {
		return err
	}
	for _, r := range have {
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete route %s: %w", dst, err)
		}
	}
	return nil
}

// deleteLink removes a link; an absent one is not an error.
func deleteLink(h *netlink.Handle, name string) error {
	l, err := linkByName(h, name)
	if err != nil || l == nil {
		return err
	}
	if err := h.LinkDel(l); err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}
