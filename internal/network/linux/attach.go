package linux

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"nubo/internal/network"
	"nubo/internal/network/netns"
)

// Settings of an instance's namespace: its root is an unprivileged user in
// its own user namespace, so sshd needs port 22 unprivileged, and ping
// needs ICMP datagram sockets (raw sockets are not allowed there).
var instanceSysctls = []netns.Sysctl{
	{Key: "net/ipv4/ip_unprivileged_port_start", Value: "0"},
	{Key: "net/ipv4/ping_group_range", Value: "0\t2147483647"},
}

// Attach makes eth<Device> in the instance's namespace: a veth whose other
// end (the port) is in the VPC router, which routes each of the
// interface's addresses (/32) to the port, has a permanent neighbour entry
// for each with the MAC, answers ARP for the subnet's other addresses
// (proxy ARP) and drops any other source address on the port (strict
// reverse-path filter). On an attached interface it sets the secondary
// addresses, taking over those routed to another port of the VPC.
func (d *Driver) Attach(ctx context.Context, ifc network.Interface) (string, error) {
	if err := ifc.Validate(); err != nil {
		return "", err
	}
	defer d.begin("vpc/"+ifc.VPCID, "i/"+ifc.InstanceID)()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	rpath, rh, _, err := d.router(ifc.VPCID)
	if err != nil {
		return "", err
	}
	defer rh.Close()
	subnets, err := d.subnets(ctx, rpath)
	if err != nil {
		return "", err
	}
	subnet, ok := findSubnet(subnets, ifc.SubnetID)
	if !ok {
		return "", fmt.Errorf("%w: subnet %s in VPC %s", network.ErrNotFound, ifc.SubnetID, ifc.VPCID)
	}
	if err := ifc.CheckSubnet(subnet.CIDR); err != nil {
		return "", err
	}

	// Measure: this instance's ports in the router, and who routes the IPs.
	ports, err := routerPorts(rh)
	if err != nil {
		return "", err
	}
	var mine *port
	devices := make(map[int]bool)
	for i, p := range ports {
		if p.instanceID == ifc.InstanceID {
			devices[p.device] = true
			if p.device == ifc.Device {
				mine = &ports[i]
			}
		}
	}
	if mine != nil && mine.subnetID != ifc.SubnetID {
		return "", fmt.Errorf("%w: %s eth%d is attached to subnet %s", network.ErrConflict, ifc.InstanceID, ifc.Device, mine.subnetID)
	}
	if err := checkRoutedElsewhere(rh, mine, ifc); err != nil {
		return "", err
	}

	ipath := d.instanceNS(ifc.InstanceID)
	if _, err := netns.Create(ipath); err != nil {
		return "", fmt.Errorf("instance namespace: %w", err)
	}
	if err := netns.SetSysctls(ipath, instanceSysctls...); err != nil {
		return "", fmt.Errorf("instance namespace: %w", err)
	}
	ih, err := netns.NewHandle(ipath)
	if err != nil {
		return "", err
	}
	defer ih.Close()
	links, err := linkList(ih)
	if err != nil {
		return "", err
	}
	for _, l := range links {
		if dev, ok := ethDevice(l.Attrs().Name); ok && l.Type() == "veth" && !devices[dev] {
			return "", fmt.Errorf("%w: instance %s has eth%d outside VPC %s", network.ErrConflict, ifc.InstanceID, dev, ifc.VPCID)
		}
	}
	eth, err := linkByName(ih, ethName(ifc.Device))
	if err != nil {
		return "", err
	}
	if mine != nil && eth != nil {
		if err := sameInterface(ih, eth, ifc); err != nil {
			return "", err
		}
	} else {
		if eth, err = d.createPort(rh, ih, ipath, ifc); err != nil {
			return "", err
		}
	}
	portLink, err := linkByName(rh, portName(ifc.InstanceID, ifc.Device))
	if err != nil {
		return "", err
	}
	if portLink == nil {
		return "", fmt.Errorf("port of %s eth%d vanished", ifc.InstanceID, ifc.Device)
	}
	if err := d.configureInstanceSide(ipath, ih, eth, ifc); err != nil {
		return "", err
	}
	if err := d.configureRouterSide(rpath, rh, portLink, ifc, func() { awaitOperUp(ih, eth.Attrs().Name, rh, portLink.Attrs().Name) }); err != nil {
		return "", err
	}
	return ipath, nil
}

// awaitOperUp waits (up to a second) for both ends of a new veth to be
// operational: the end brought up first gets its carrier through the
// kernel's link watch, and until that runs it drops what it sends, such
// as the first ARP request of an interface moved to a running instance
// (whose SYN-ACK then waits a second for the ARP retry). Called before
// the router routes anything to the port.
func awaitOperUp(ih *netlink.Handle, eth string, rh *netlink.Handle, port string) {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		a, errA := ih.LinkByName(eth)
		b, errB := rh.LinkByName(port)
		if errA != nil || errB != nil || a.Attrs().OperState == netlink.OperUp && b.Attrs().OperState == netlink.OperUp {
			return
		}
	}
}

// secondaryProto marks the router's routes to secondary addresses (a route
// protocol of nubo's own; a primary's route has the kernel's default):
// a secondary address may be taken over from another port, a primary may
// not, and Observe tells them apart.
const secondaryProto netlink.RouteProtocol = 0x6e

// ifcAddrs is an interface's addresses, the primary first.
func ifcAddrs(ifc network.Interface) []netip.Addr {
	return append([]netip.Addr{ifc.PrivateIP}, ifc.SecondaryIPs...)
}

// checkRoutedElsewhere refuses an interface whose primary address the
// router routes to another port (or anywhere else), or whose secondary
// address is another port's primary. A secondary routed to another port as
// a secondary is fine: it moves (configureRouterSide).
func checkRoutedElsewhere(rh *netlink.Handle, mine *port, ifc network.Interface) error {
	routes, err := mainRoutes(rh)
	if err != nil {
		return err
	}
	self := -1
	if mine != nil {
		self = mine.link.Attrs().Index
	}
	for i, a := range ifcAddrs(ifc) {
		for _, r := range routes {
			if routeDst(r) != netip.PrefixFrom(a, 32) || r.LinkIndex == self {
				continue
			}
			if i == 0 {
				return fmt.Errorf("%w: private IP %s is in use in VPC %s", network.ErrConflict, a, ifc.VPCID)
			}
			if r.Protocol != secondaryProto {
				return fmt.Errorf("%w: secondary IP %s is the primary IP of another interface in VPC %s", network.ErrConflict, a, ifc.VPCID)
			}
		}
	}
	return nil
}

// sameInterface checks that an existing eth<Device> is this interface (a
// different MAC or primary address is another interface: a conflict).
// Secondary addresses are whatever configureInstanceSide makes them.
func sameInterface(ih *netlink.Handle, eth netlink.Link, ifc network.Interface) error {
	if !bytes.Equal(eth.Attrs().HardwareAddr, ifc.MAC) {
		return fmt.Errorf("%w: %s eth%d has MAC %s", network.ErrConflict, ifc.InstanceID, ifc.Device, eth.Attrs().HardwareAddr)
	}
	have, err := primaryAddrs(ih, eth)
	if err != nil {
		return err
	}
	want := netip.PrefixFrom(ifc.PrivateIP, ifc.PrefixLen)
	for _, a := range have {
		if a != want {
			return fmt.Errorf("%w: %s eth%d has address %s", network.ErrConflict, ifc.InstanceID, ifc.Device, a)
		}
	}
	return nil
}

// createPort makes the veth pair: the port in the router, eth<Device> with
// the interface's MAC in the instance's namespace.
func (d *Driver) createPort(rh, ih *netlink.Handle, ipath string, ifc network.Interface) (netlink.Link, error) {
	// A port of that name without its alias is a leftover of a crash
	// between creating and naming it.
	if err := deleteLink(rh, portName(ifc.InstanceID, ifc.Device)); err != nil {
		return nil, err
	}
	f, err := os.Open(ipath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name: portName(ifc.InstanceID, ifc.Device), MTU: d.cfg.MTU, TxQLen: -1,
			Alias: portAlias(ifc.InstanceID, ifc.Device, ifc.SubnetID),
		},
		PeerName:         ethName(ifc.Device),
		PeerHardwareAddr: ifc.MAC,
		PeerNamespace:    netlink.NsFd(int(f.Fd())),
		PeerMTU:          uint32(d.cfg.MTU),
	}
	if _, err := addVeth(rh, veth); err != nil {
		return nil, fmt.Errorf("create %s eth%d: %w", ifc.InstanceID, ifc.Device, err)
	}
	eth, err := linkByName(ih, ethName(ifc.Device))
	if err == nil && eth == nil {
		err = fmt.Errorf("%s eth%d vanished after creation", ifc.InstanceID, ifc.Device)
	}
	return eth, err
}

func (d *Driver) configureInstanceSide(ipath string, ih *netlink.Handle, eth netlink.Link, ifc network.Interface) error {
	lo, err := linkByName(ih, "lo")
	if err != nil {
		return err
	}
	if err := ensureUp(ih, lo, 0); err != nil {
		return err
	}
	if !bytes.Equal(eth.Attrs().HardwareAddr, ifc.MAC) {
		if err := ih.LinkSetHardwareAddr(eth, ifc.MAC); err != nil {
			return fmt.Errorf("MAC of eth%d: %w", ifc.Device, err)
		}
	}
	var want []netip.Prefix
	for _, a := range ifcAddrs(ifc) {
		want = append(want, netip.PrefixFrom(a, ifc.PrefixLen))
	}
	if err := ensureAddrs(ih, eth, want); err != nil {
		return err
	}
	// ARP is retried every 100 ms, not every second: the router answers
	// ARP only for addresses some interface has, so a neighbour asked for
	// while its address was between interfaces (an ENI being moved) is
	// found again within 100 ms of the move. (Per device: a namespace
	// other than the host's has no neigh/default.)
	if err := netns.SetSysctls(ipath, netns.Sysctl{Key: "net/ipv4/neigh/" + eth.Attrs().Name + "/retrans_time_ms", Value: "100"}); err != nil {
		return err
	}
	if err := d.ensureLink(ih, eth); err != nil {
		return err
	}
	// Source routing, as EC2's own images set up for their ENIs (the
	// instance cannot: it does not own its namespace): what leaves from
	// one of this interface's addresses leaves through it, so replies do
	// not take another interface and fall to the router's reverse-path
	// filter.
	table := interfaceTable + ifc.Device
	subnet := netip.PrefixFrom(ifc.PrivateIP, ifc.PrefixLen).Masked()
	routes := []netlink.Route{
		{Dst: ipNet(subnet), LinkIndex: eth.Attrs().Index, Src: ifc.PrivateIP.AsSlice(), Scope: netlink.SCOPE_LINK, Table: table},
		{LinkIndex: eth.Attrs().Index, Gw: ifc.Gateway.AsSlice(), Table: table},
	}
	if ifc.Device == 0 { // only the primary interface carries the main default route
		routes = append(routes, netlink.Route{LinkIndex: eth.Attrs().Index, Gw: ifc.Gateway.AsSlice(), Table: unix.RT_TABLE_MAIN})
	}
	for _, r := range routes {
		if err := ensureRoute(ih, r); err != nil {
			return err
		}
	}
	return ensureRules(ih, table, table, ifcAddrs(ifc))
}

// interfaceTable + device is the routing table (and rule priority) of an
// instance's interface.
const interfaceTable = 1000

// configureRouterSide sets the port up, calls ready (which waits for the
// link to work), then routes the interface's addresses to it.
func (d *Driver) configureRouterSide(rpath string, rh *netlink.Handle, p netlink.Link, ifc network.Interface, ready func()) error {
	name := p.Attrs().Name
	err := netns.SetSysctls(rpath,
		netns.Sysctl{Key: "net/ipv4/conf/" + name + "/proxy_arp", Value: "1"},
		netns.Sysctl{Key: "net/ipv4/conf/" + name + "/rp_filter", Value: "1"},
		// Proxy ARP answers a broadcast request after a random delay of
		// up to proxy_delay (0.8 s by default): an instance's first packet
		// to a neighbour would wait for it.
		netns.Sysctl{Key: "net/ipv4/neigh/" + name + "/proxy_delay", Value: "0"})
	if err != nil {
		return err
	}
	if err := d.ensureLink(rh, p); err != nil {
		return err
	}
	ready()
	routes, err := mainRoutes(rh)
	if err != nil {
		return err
	}
	neighs, err := neighbours(rh)
	if err != nil {
		return err
	}
	idx := p.Attrs().Index
	for i, a := range ifcAddrs(ifc) {
		// The neighbour before the route: the first packet routed to the
		// port finds it.
		if err := ensureNeigh(rh, neighs, idx, a, ifc.MAC); err != nil {
			return err
		}
		r := netlink.Route{Dst: ipNet(netip.PrefixFrom(a, 32)), LinkIndex: idx, Scope: netlink.SCOPE_LINK, Table: unix.RT_TABLE_MAIN}
		if i > 0 {
			r.Protocol = secondaryProto
		}
		// A secondary routed to another port moves here in one replace.
		if err := replaceRoute(rh, r, routesOf(routes, netip.PrefixFrom(a, 32))); err != nil {
			return err
		}
		for _, n := range neighs {
			if n.LinkIndex != idx && toAddr(n.IP) == a {
				if err := deleteNeigh(rh, n); err != nil { // the old port's
					return err
				}
			}
		}
	}
	return removeStale(rh, routes, neighs, idx, ifcAddrs(ifc))
}

// routesOf picks the routes to dst out of a table's routes.
func routesOf(routes []netlink.Route, dst netip.Prefix) []netlink.Route {
	var out []netlink.Route
	for _, r := range routes {
		if routeDst(r) == dst {
			out = append(out, r)
		}
	}
	return out
}

// ensureNeigh makes a permanent entry for ip with mac on the link.
func ensureNeigh(rh *netlink.Handle, neighs []netlink.Neigh, link int, ip netip.Addr, mac net.HardwareAddr) error {
	for _, n := range neighs {
		if n.LinkIndex == link && toAddr(n.IP) == ip && n.State == netlink.NUD_PERMANENT && bytes.Equal(n.HardwareAddr, mac) {
			return nil
		}
	}
	err := rh.NeighSet(&netlink.Neigh{
		LinkIndex: link, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac,
	})
	if err != nil {
		return fmt.Errorf("neighbour %s: %w", ip, err)
	}
	return nil
}

// removeStale removes the port's routes and neighbours of addresses the
// interface no longer has (as measured before the port was configured).
func removeStale(rh *netlink.Handle, routes []netlink.Route, neighs []netlink.Neigh, link int, keep []netip.Addr) error {
	for _, r := range routes {
		dst := routeDst(r)
		if r.LinkIndex == link && dst.Bits() == 32 && !slices.Contains(keep, dst.Addr()) {
			if err := deleteRoute(rh, r); err != nil {
				return err
			}
		}
	}
	for _, n := range neighs {
		if n.LinkIndex == link && !slices.Contains(keep, toAddr(n.IP)) {
			if err := deleteNeigh(rh, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// Detach deletes the instance's interfaces (each port goes with its veth,
// and the port's route and neighbour with it) and its namespace.
func (d *Driver) Detach(ctx context.Context, instanceID string) error {
	if !network.ValidID(instanceID, "i-") {
		return fmt.Errorf("%w: instance ID %q", network.ErrInvalid, instanceID)
	}
	defer d.begin("i/" + instanceID)()
	if err := ctx.Err(); err != nil {
		return err
	}
	ipath := d.instanceNS(instanceID)
	ok, err := netns.IsNS(ipath)
	if err != nil {
		return err
	}
	if ok {
		ih, err := netns.NewHandle(ipath)
		if err != nil {
			return err
		}
		err = deleteEths(ih)
		ih.Close()
		if err != nil {
			return err
		}
	} else if err := d.deletePorts(instanceID, -1); err != nil {
		// The namespace's file is gone but a process may still hold the
		// namespace, and with it the veths.
		return err
	}
	return netns.Delete(ipath)
}

func deleteEths(ih *netlink.Handle) error {
	links, err := linkList(ih)
	if err != nil {
		return err
	}
	for _, l := range links {
		if _, ok := ethDevice(l.Attrs().Name); ok && l.Type() == "veth" {
			if err := deleteLink(ih, l.Attrs().Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// DetachInterface deletes eth<device> of an instance (its port goes with
// the veth, and the port's routes and neighbours with it) and the
// interface's source-routing rules and table; the instance's other
// interfaces stay as they are.
func (d *Driver) DetachInterface(ctx context.Context, instanceID string, device int) error {
	if !network.ValidID(instanceID, "i-") {
		return fmt.Errorf("%w: instance ID %q", network.ErrInvalid, instanceID)
	}
	if device < 0 || device > network.MaxDevice {
		return fmt.Errorf("%w: device index %d: must be 0 to %d", network.ErrInvalid, device, network.MaxDevice)
	}
	defer d.begin("i/" + instanceID)()
	if err := ctx.Err(); err != nil {
		return err
	}
	ipath := d.instanceNS(instanceID)
	ok, err := netns.IsNS(ipath)
	if err != nil {
		return err
	}
	if !ok {
		// As in Detach: a process may still hold the namespace.
		return d.deletePorts(instanceID, device)
	}
	// The router's routes to the port first: from then on a packet to
	// the interface's addresses is refused at once (host unreachable)
	// instead of vanishing into a link being deleted, which would leave a
	// client's connection attempt waiting a second for its retry.
	if err := d.forPorts(instanceID, device, unroutePort); err != nil {
		return err
	}
	ih, err := netns.NewHandle(ipath)
	if err != nil {
		return err
	}
	defer ih.Close()
	// Then the link: its addresses stop answering. The rules and the
	// table after it, also when a crash left the link gone.
	if err := deleteLink(ih, ethName(device)); err != nil {
		return err
	}
	table := interfaceTable + device
	if err := ensureRules(ih, table, table, nil); err != nil {
		return err
	}
	return flushTable(ih, table)
}

// flushTable removes every IPv4 route of a routing table.
func flushTable(h *netlink.Handle, table int) error {
	routes, err := tableRoutes(h, table)
	if err != nil {
		return fmt.Errorf("routes of table %d: %w", table, err)
	}
	for _, r := range routes {
		if err := deleteRoute(h, r); err != nil {
			return err
		}
	}
	return nil
}

// deletePorts removes an instance's ports (device < 0) or one of them from
// every router.
func (d *Driver) deletePorts(instanceID string, device int) error {
	return d.forPorts(instanceID, device, func(rh *netlink.Handle, p port) error { return deleteLink(rh, p.link.Attrs().Name) })
}

// unroutePort removes the router's routes to a port.
func unroutePort(rh *netlink.Handle, p port) error {
	routes, err := mainRoutes(rh)
	if err != nil {
		return err
	}
	for _, r := range routes {
		if r.LinkIndex == p.link.Attrs().Index {
			if err := deleteRoute(rh, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// forPorts calls fn for an instance's ports (device < 0) or one of them, in
// every router.
func (d *Driver) forPorts(instanceID string, device int, fn func(rh *netlink.Handle, p port) error) error {
	names, err := netns.List(d.cfg.NetNSDir, d.cfg.Prefix+"-")
	if err != nil {
		return err
	}
	for _, n := range names {
		if kind, _ := d.nsKind(n); kind != "vpc" {
			continue
		}
		rh, err := netns.NewHandle(d.nsPath(n))
		if err != nil {
			return err
		}
		ports, err := routerPorts(rh)
		for _, p := range ports {
			if err == nil && p.instanceID == instanceID && (device < 0 || p.device == device) {
				err = fn(rh, p)
			}
		}
		rh.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
