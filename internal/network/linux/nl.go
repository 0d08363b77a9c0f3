package linux

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

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
	list, err := addrList(h, l)
	var out []netip.Prefix
	for _, a := range list {
		out = append(out, toPrefix(a.IPNet))
	}
	return out, err
}

func addrList(h *netlink.Handle, l netlink.Link) ([]netlink.Addr, error) {
	list, err := retry(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", l.Attrs().Name, err)
	}
	return list, nil
}

// primaryAddrs returns a link's primary addresses: the first of each
// prefix; the kernel flags the others of the prefix secondary, and removing
// a primary address removes its secondaries.
func primaryAddrs(h *netlink.Handle, l netlink.Link) ([]netip.Prefix, error) {
	list, err := addrList(h, l)
	var out []netip.Prefix
	for _, a := range list {
		if a.Flags&unix.IFA_F_SECONDARY == 0 {
			out = append(out, toPrefix(a.IPNet))
		}
	}
	return out, err
}

// ensureAddrs makes want (in order: the first is the primary) the link's
// addresses.
func ensureAddrs(h *netlink.Handle, l netlink.Link, want []netip.Prefix) error {
	have, err := addrs(h, l)
	if err != nil {
		return err
	}
	removed := false
	for _, a := range have {
		if !slices.Contains(want, a) {
			if err := removeAddr(h, l, a); err != nil {
				return err
			}
			removed = true
		}
	}
	if removed { // a primary takes its secondaries with it
		if have, err = addrs(h, l); err != nil {
			return err
		}
	}
	for _, p := range want {
		if slices.Contains(have, p) {
			continue
		}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add %s to %s: %w", p, l.Attrs().Name, err)
		}
	}
	return nil
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

// ensureLink sets a veth of nubo's to the configured MTU and packet size
// and brings it up.
func (d *Driver) ensureLink(h *netlink.Handle, l netlink.Link) error {
	if size := d.cfg.GSOMaxSize; size > 0 {
		a := l.Attrs()
		if int(a.GSOIPv4MaxSize) != size {
			if err := h.LinkSetGSOIPv4MaxSize(l, size); err != nil && !unsupported(err) {
				return fmt.Errorf("GSO size of %s: %w", a.Name, err)
			}
		}
		if int(a.GROIPv4MaxSize) != size {
			if err := h.LinkSetGROIPv4MaxSize(l, size); err != nil && !unsupported(err) {
				return fmt.Errorf("GRO size of %s: %w", a.Name, err)
			}
		}
	}
	return ensureUp(h, l, d.cfg.MTU)
}

// unsupported: the kernel predates the setting (IPv4 BIG TCP needs 6.3).
func unsupported(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ERANGE)
}

// routesTo lists the main table's IPv4 routes with exactly this destination.
func routesTo(h *netlink.Handle, dst netip.Prefix) ([]netlink.Route, error) {
	return tableRoutesTo(h, unix.RT_TABLE_MAIN, dst)
}

func tableRoutesTo(h *netlink.Handle, table int, dst netip.Prefix) ([]netlink.Route, error) {
	rs, err := tableRoutes(h, table)
	if err != nil {
		return nil, fmt.Errorf("routes to %s: %w", dst, err)
	}
	var out []netlink.Route
	for _, r := range rs {
		if routeDst(r) == dst {
			out = append(out, r)
		}
	}
	return out, nil
}

// mainRoutes lists the main table's IPv4 routes.
func mainRoutes(h *netlink.Handle) ([]netlink.Route, error) {
	return tableRoutes(h, unix.RT_TABLE_MAIN)
}

func tableRoutes(h *netlink.Handle, table int) ([]netlink.Route, error) {
	return retry(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	})
}

// routeDst is a route's destination, 0.0.0.0/0 for the default route.
func routeDst(r netlink.Route) netip.Prefix {
	if r.Dst == nil {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return toPrefix(r.Dst)
}

// sameRoute compares what ensureRoute sets (have a, want b); a protocol
// is compared only if b names one.
func sameRoute(a, b netlink.Route) bool {
	return a.LinkIndex == b.LinkIndex && a.Gw.Equal(b.Gw) && a.Src.Equal(b.Src) && a.Type == b.Type &&
		a.Scope == b.Scope && a.Flags&int(netlink.FLAG_ONLINK) == b.Flags&int(netlink.FLAG_ONLINK) &&
		(b.Protocol == 0 || a.Protocol == b.Protocol)
}

// ensureRoute makes r the one route to its destination in its table
// (main if r.Table is 0).
func ensureRoute(h *netlink.Handle, r netlink.Route) error {
	if r.Table == 0 {
		r.Table = unix.RT_TABLE_MAIN
	}
	have, err := tableRoutesTo(h, r.Table, routeDst(r))
	if err != nil {
		return err
	}
	return replaceRoute(h, r, have)
}

// replaceRoute is ensureRoute given the routes to r's destination in its
// table (have), as measured.
func replaceRoute(h *netlink.Handle, r netlink.Route, have []netlink.Route) error {
	if r.Table == 0 {
		r.Table = unix.RT_TABLE_MAIN
	}
	if len(have) == 1 && sameRoute(have[0], r) {
		return nil
	}
	if err := h.RouteReplace(&r); err != nil {
		return fmt.Errorf("route %s: %w", routeDst(r), err)
	}
	return nil
}

// deleteRoute removes one route; an absent one is not an error.
func deleteRoute(h *netlink.Handle, r netlink.Route) error {
	if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("delete route %s: %w", routeDst(r), err)
	}
	return nil
}

// neighbours lists the IPv4 neighbour entries of every link.
func neighbours(h *netlink.Handle) ([]netlink.Neigh, error) {
	ns, err := retry(func() ([]netlink.Neigh, error) { return h.NeighList(0, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("neighbours: %w", err)
	}
	return ns, nil
}

// deleteNeigh removes a neighbour entry; an absent one is not an error.
func deleteNeigh(h *netlink.Handle, n netlink.Neigh) error {
	if err := h.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete neighbour %s: %w", n.IP, err)
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

// addVeth creates a veth pair and sets the alias of its local end (the
// kernel ignores an alias given at creation).
func addVeth(h *netlink.Handle, v *netlink.Veth) (netlink.Link, error) {
	if err := h.LinkAdd(v); err != nil {
		return nil, err
	}
	l, err := h.LinkByName(v.Name)
	if err != nil {
		return nil, err
	}
	if v.Alias != "" {
		if err := h.LinkSetAlias(l, v.Alias); err != nil {
			return nil, fmt.Errorf("alias of %s: %w", v.Name, err)
		}
		l.Attrs().Alias = v.Alias
	}
	return l, nil
}

// ensureRules makes "from src lookup table", one for each of srcs, the
// rules of that priority (none if srcs is empty).
func ensureRules(h *netlink.Handle, prio, table int, srcs []netip.Addr) error {
	rules, err := retry(func() ([]netlink.Rule, error) { return h.RuleList(netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	have := make(map[netip.Addr]bool)
	for _, r := range rules {
		if r.Priority != prio {
			continue
		}
		src := toPrefix(r.Src)
		if r.Table == table && src.Bits() == 32 && slices.Contains(srcs, src.Addr()) && !have[src.Addr()] {
			have[src.Addr()] = true
			continue
		}
		if err := h.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete rule %d from %s: %w", prio, src, err)
		}
	}
	for _, src := range srcs {
		if have[src] {
			continue
		}
		r := netlink.NewRule()
		r.Family, r.Priority, r.Table, r.Src = netlink.FAMILY_V4, prio, table, ipNet(netip.PrefixFrom(src, 32))
		if err := h.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("rule from %s lookup %d: %w", src, table, err)
		}
	}
	return nil
}
